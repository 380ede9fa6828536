// LayerNorm over rows of H, forward only (CONTRACT: cpu/layernorm.cpp and cuda/layernorm.cu). DeBERTa-v2 uses it after
// the embedding, after each attention and MLP block (post-norm), and on the relative embeddings.
//   y[r, :] = (x[r, :] - mean_r) / sqrt(var_r + eps) * w + b
//   mean_r = sum_j x_rj / H;  var_r = sum_j (x_rj - mean_r)^2 / H   (biased, as torch.nn.LayerNorm)
// The arithmetic is double whatever T, rounded once to T at the end (two passes, so a large common
// offset does not cancel the variance). y may be x (in place). Rows are independent:
// a row's result is bitwise the same alone or in a batch, whatever the threads.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "runtime/cuda_launch.h"

namespace sppo::cpu {

template <typename T>
void layernorm_forward(const T* x, const T* w, const T* b, int64_t n, int64_t H, double eps, T* y);

}  // namespace sppo::cpu

#ifdef SPPO_WITH_CUDA
namespace sppo::cuda {
// cuda/layernorm.cu: the same contract on device memory, queued without synchronising. x, w, b
// and y are `dtype` (F32, or BF16 in the bf16 mode); the arithmetic is double, one block per
// row (per-thread strided sums, then a fixed tree), rounded once to dtype.
void layernorm_forward(const void* x, const void* w, const void* b, DType dtype, int64_t n, int64_t H, double eps,
                       void* y, const Launch& launch);
}  // namespace sppo::cuda
#endif
