// Sum of squares of gradients, for clipping by the global norm (CONTRACT: cpu/global_norm.cpp and
// cuda/global_norm.cu).
//   *acc += sum_i g[i]^2, accumulated in double in a fixed order (chunks of kNormChunk elements
//   in index order, each chunk's partial summed in order), independent of the thread count.
// acc is device memory (a scalar), so several ranges (buckets, shards) add into one value and the
// optimizer reads it there: the host never waits for it inside a step. g is F32, F64, or BF16 (the
// bf16 gradient arena; T = uint16_t on the CPU): each element widened exactly before it is squared
// in double (optim_math::load_grad).
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "runtime/cuda_launch.h"

namespace sppo {

constexpr int64_t kNormChunk = 1 << 16;

namespace cpu {
template <typename T>
void sum_squares(const T* g, int64_t n, double* acc);
}  // namespace cpu

#ifdef SPPO_WITH_CUDA
namespace cuda {
// cuda/global_norm.cu: F32 or BF16 gradients (`dtype`), double sums in a fixed order set by n
// (chunk partials, then a fixed reduction of the partials), the same bits every run; *acc is
// device memory.
void sum_squares(const void* g, DType dtype, int64_t n, double* acc, const Launch& launch);
}  // namespace cuda
#endif

}  // namespace sppo
