// Per-element math of RMSNorm (kernels/rmsnorm.h), shared by cpu/rmsnorm.cpp and
// cuda/rmsnorm.cu (host/device), in the compute type T. The sums that feed these (sum of
// squares, the backward dot product, dw) are each backend's own; these are the formulas around
// them.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/host_device.h"

namespace sppo::rmsnorm_math {

// rstd = 1 / sqrt(mean(x^2) + eps) from the row's sum of squares.
template <typename T>
SPPO_HD inline T rstd(T sum_squares, int64_t H, double eps) {
  return T(1) / std::sqrt(sum_squares / T(H) + T(eps));
}

// y = w * (x * rstd)
template <typename T>
SPPO_HD inline T forward(T x, T w, T rs) {
  return w * (x * rs);
}

// The backward's per-row coefficient from dot = sum_j dy_j w_j x_j: dot rstd^3 / H.
template <typename T>
SPPO_HD inline T backward_coef(T dot, T rs, int64_t H) {
  return dot * rs * rs * rs / T(H);
}

// dx = rstd dy w - x c   (c = backward_coef)
template <typename T>
SPPO_HD inline T backward_dx(T x, T w, T dy, T rs, T c) {
  return rs * dy * w - x * c;
}

// One row's term of dw: dy x rstd
template <typename T>
SPPO_HD inline T dw_term(T x, T dy, T rs) {
  return dy * x * rs;
}

}  // namespace sppo::rmsnorm_math
