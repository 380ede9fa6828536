// Row movement and per-sequence sums, the glue between the decoder and its heads (CONTRACT:
// cpu/rows.cpp and cuda/rows.cu).
//   gather_rows:      dst[i, :] = src[idx[i], :]                   (i < n)
//   scatter_add_rows: dst[idx[i], :] += src[i, :]                  (idx distinct)
//   segment_sum:      out[s] = sum of x[i] with seg[i] == s, in increasing i, accumulated in
//                     double; out has S entries (segments with no rows give 0)
//   expand_segments:  out[i] = x[seg[i]] * scale
// Indices are validated against the sizes given (they come from the host batch).
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "runtime/cuda_launch.h"

namespace sppo::cpu {

template <typename T>
void gather_rows(const T* src, int64_t src_rows, const int32_t* idx, int64_t n, int64_t H, T* dst);
template <typename T>
void scatter_add_rows(const T* src, const int32_t* idx, int64_t n, int64_t H, int64_t dst_rows, T* dst);
template <typename T>
void segment_sum(const T* x, const int32_t* seg, int64_t n, int64_t S, T* out);
template <typename T>
void expand_segments(const T* x, const int32_t* seg, int64_t n, int64_t S, double scale, T* out);

}  // namespace sppo::cpu

#ifdef SPPO_WITH_CUDA
namespace sppo::cuda {
// cuda/rows.cu: the same contracts on device memory, deterministic without float atomics. Rows
// (gather, scatter) are `dtype` (F32 or BF16); segment sums and their expansion are F32. Bad
// indices (and repeats in scatter_add_rows) are recorded in the deferred error word and thrown
// with the CPU's messages at the next check; a bad index is skipped, never dereferenced.
void gather_rows(const void* src, int64_t src_rows, const int32_t* idx, int64_t n, int64_t H, DType dtype, void* dst,
                 const Launch& launch);
void scatter_add_rows(const void* src, const int32_t* idx, int64_t n, int64_t H, int64_t dst_rows, DType dtype,
                      void* dst, const Launch& launch);
void segment_sum(const float* x, const int32_t* seg, int64_t n, int64_t S, float* out, const Launch& launch);
void expand_segments(const float* x, const int32_t* seg, int64_t n, int64_t S, double scale, float* out,
                     const Launch& launch);
}  // namespace sppo::cuda
#endif
