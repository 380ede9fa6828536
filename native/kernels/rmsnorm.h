// RMSNorm over rows of H, forward and backward (CONTRACT: cpu/rmsnorm.cpp).
//   y = x * rsqrt(mean(x^2) + eps) * w;   rstd[r] = rsqrt(mean(x_r^2) + eps) kept for backward
//   dx = r g - x r^3/H sum_j g_j x_j,  g = dy * w;   dw += sum_r dy_r x_r r_r
// dx is overwritten, or added to when accumulate_dx (the residual stream's gradient). dw's sum
// over rows runs in row order (deterministic).
#pragma once
#include <cstdint>

namespace sppo::cpu {

template <typename T>
void rmsnorm_forward(const T* x, const T* w, int64_t n, int64_t H, double eps, T* y, T* rstd);

template <typename T>
void rmsnorm_backward(const T* x, const T* w, const T* rstd, const T* dy, int64_t n, int64_t H, T* dx, T* dw,
                      bool accumulate_dx);

}  // namespace sppo::cpu
