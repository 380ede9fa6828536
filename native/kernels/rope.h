// Rotary position embeddings as transformers applies them (CONTRACT: cpu/rope.cpp and
// cuda/rope.cu; the per-element math is kernels/rope_math.h).
//   tables: angle = float32(inv_freq[i] * float32(position)) (one float32 product, as transformers,
//           which computes rope in float32 even for a float64 model); cos/sin of it rounded to
//           float32, stored as T. cos/sin [n, head_dim/2]. The inverse frequencies (default,
//           linear, llama3) come from the config: model/rope_freq.h.
//   apply:  x [n, heads, head_dim] in place, rotate_half on (first half, second half);
//           inverse applies the transpose (the backward pass).
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "runtime/cuda_launch.h"

namespace sppo::cpu {

template <typename T>
void rope_tables(const float* inv_freq, int64_t half, const int32_t* positions, int64_t n, T* cos_out, T* sin_out);

template <typename T>
void rope_apply(T* x, int64_t n, int64_t heads, int64_t head_dim, const T* cos_t, const T* sin_t, bool inverse);

}  // namespace sppo::cpu

#ifdef SPPO_WITH_CUDA
namespace sppo::cuda {
// cuda/rope.cu: the same contract on device memory. cos/sin and x are `dtype` (F32 or BF16); x
// and its tables share the type; inv_freq is F32 and positions I32.
void rope_tables(const float* inv_freq, int64_t half, const int32_t* positions, int64_t n, DType dtype, void* cos_out,
                 void* sin_out, const Launch& launch);
void rope_apply(void* x, DType dtype, int64_t n, int64_t heads, int64_t head_dim, const void* cos_t, const void* sin_t,
                bool inverse, const Launch& launch);
}  // namespace sppo::cuda
#endif
