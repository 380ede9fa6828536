// A bias and an activation over rows of H (CONTRACT: cpu/bias_act.cpp and cuda/bias_act.cu; the
// per-element formulas are kernels/bias_act_math.h): what follows every linear layer of the
// DeBERTa encoder and the PairRM head (the matmul op has no bias).
//   y[r, j] = act(x[r, j] + b[j])       b optional (absent: 0)
//   Identity: v;  Gelu: 0.5 v (1 + erf(v / sqrt 2)) (exact erf, torch's default "gelu");  Tanh: tanh v
// y may be x (in place). Each element gets the same arithmetic wherever it sits in the array.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "runtime/cuda_launch.h"

namespace sppo {

enum class Activation : int { Identity = 0, Gelu = 1, Tanh = 2 };

const char* activation_name(Activation a);

namespace cpu {
template <typename T>
void bias_act(const T* x, const T* b, int64_t n, int64_t H, Activation act, T* y);
}  // namespace cpu

}  // namespace sppo

#ifdef SPPO_WITH_CUDA
namespace sppo::cuda {
// cuda/bias_act.cu: the same contract on device memory, queued without synchronising. x, b and y
// are `dtype` (F32, or BF16 in the bf16 mode, computed in fp32); b may be null.
void bias_act(const void* x, const void* b, DType dtype, int64_t n, int64_t H, Activation act, void* y,
              const Launch& launch);
}  // namespace sppo::cuda
#endif
