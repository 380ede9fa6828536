// RMSNorm over rows of H, forward and backward (CONTRACT: cpu/rmsnorm.cpp and cuda/rmsnorm.cu;
// the per-element formulas are kernels/rmsnorm_math.h).
//   y = x * rsqrt(mean(x^2) + eps) * w;   rstd[r] = rsqrt(mean(x_r^2) + eps) kept for backward
//   dx = r g - x r^3/H sum_j g_j x_j,  g = dy * w;   dw += sum_r dy_r x_r r_r
// dx is overwritten, or added to when accumulate_dx (the residual stream's gradient). dw's sum
// over rows runs in row order (deterministic). In the bf16 mode dw (a weight gradient) is F32, or
// BF16 (the trainer's bf16 gradient arena): then the rows' terms are added to widen(dw) in fp32 and
// the sum is rounded once into dw (the CPU by emulation: backend/half_emulation.h; CUDA in its
// final write), one bf16 rounding per call.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "runtime/cuda_launch.h"

namespace sppo::cpu {

template <typename T>
void rmsnorm_forward(const T* x, const T* w, int64_t n, int64_t H, double eps, T* y, T* rstd);

template <typename T>
void rmsnorm_backward(const T* x, const T* w, const T* rstd, const T* dy, int64_t n, int64_t H, T* dx, T* dw,
                      bool accumulate_dx);

}  // namespace sppo::cpu

#ifdef SPPO_WITH_CUDA
namespace sppo::cuda {
// cuda/rmsnorm.cu: the same contract on device memory, queued without synchronising. x, w, y, dy
// and dx are `dtype` (F32, or BF16 in the bf16 mode); rstd is F32; dw is `dw_dtype`: F32, or BF16
// with BF16 activations (fp32 sum, one rounding in the final write). Row sums are fp32 per thread
// and a fixed double tree per block; dw is two-pass (row chunks in order, then chunks in order),
// deterministic without atomics.
void rmsnorm_forward(const void* x, const void* w, DType dtype, int64_t n, int64_t H, double eps, void* y, float* rstd,
                     const Launch& launch);
void rmsnorm_backward(const void* x, const void* w, const float* rstd, const void* dy, DType dtype, int64_t n, int64_t H,
                      void* dx, void* dw, DType dw_dtype, bool accumulate_dx, const Launch& launch);
}  // namespace sppo::cuda
#endif
