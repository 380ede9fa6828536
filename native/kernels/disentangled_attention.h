// DeBERTa-v2 self-attention with its disentangled relative-position terms, over packed sequences,
// forward only (CONTRACT: cpu/disentangled_attention.cpp and cuda/disentangled_attention.cu).
//
// Layout. S sequences lie back to back: sequence s is rows [start[s], start[s+1]) of q, k, v and
// out ([N, nh*hd], head h in columns [h*hd, (h+1)*hd)), N = start[S]. There is no padding and no
// mask: every token attends to every token of its own sequence, and to nothing else.
// Relative positions. pos_q and pos_k [P, nh*hd] are the relative embeddings projected by the
// query and key projections (DeBERTa's share_att_key), one row per relative-position bucket. For
// query i and key j of one sequence (positions within it) the bucket row is
//   d(i, j) = rel_index[(i - j) + (max_len - 1)],      rel_index: 2*max_len - 1 entries in [0, P),
// with max_len >= every sequence's length (the model builds rel_index from DeBERTa's log buckets).
// Math, per sequence, head and query row i, over its keys j in increasing order:
//   s_j = scale * (q_i.k_j  +  [c2p] q_i.pos_k[d(i,j)]  +  [p2c] k_j.pos_q[d(i,j)])
//   p_j = exp(s_j - max s) / sum exp(s - max s);   out_i = sum_j p_j v_j
// scale is the caller's (DeBERTa: 1 / sqrt(hd * (1 + c2p + p2c))). Dot products are over one
// head's hd columns. A sequence's result does not depend on the other sequences of the batch.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "runtime/cuda_launch.h"

namespace sppo {

struct RelAttnShape {
  int64_t S = 0;        // sequences
  int64_t N = 0;        // rows (start[S])
  int64_t nh = 0, hd = 0;
  int64_t P = 0;        // rows of pos_q / pos_k
  int64_t max_len = 0;  // rel_index covers offsets -(max_len-1) .. max_len-1
  bool c2p = true, p2c = true;
  double scale = 1.0;
};

namespace cpu {
// start: S + 1 entries, start[0] = 0, non-decreasing, start[S] = N, each length <= max_len.
template <typename T>
void disentangled_attention(const RelAttnShape& s, const T* q, const T* k, const T* v, const T* pos_q,
                            const T* pos_k, const int32_t* rel_index, const int32_t* start, T* out);
}  // namespace cpu

}  // namespace sppo

#ifdef SPPO_WITH_CUDA
namespace sppo::cuda {
// cuda/disentangled_attention.cu: the same contract on device memory, queued without
// synchronising. q, k, v, pos_q, pos_k and out are `dtype` (F32, or BF16 in the bf16 mode,
// computed in fp32); rel_index and start are I32 device memory, checked on the device (the
// CPU's messages, through the deferred error word; nothing is computed when they are bad).
// pos_q / pos_k / rel_index may be null when the term that reads them is off.
void disentangled_attention(const RelAttnShape& s, DType dtype, const void* q, const void* k, const void* v,
                            const void* pos_q, const void* pos_k, const int32_t* rel_index, const int32_t* start,
                            void* out, const Launch& launch);
}  // namespace sppo::cuda
#endif
