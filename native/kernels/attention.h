// Causal self-attention over a padded batch, forward and backward (CONTRACT: cpu/attention.cpp, and
// cuda/attention.cu on the GPU).
//   q [B*T, nh*hd], k/v [B*T, nkv*hd] (rope applied), mask [B*T] (1 = real token). Query row t of
//   sequence b attends to keys s <= t with mask 1; head h reads kv head h / (nh / nkv) (GQA).
//   out [B*T, nh*hd]; lse [B*T, nh] = log-sum-exp of the scaled scores (for backward). Padding
//   rows give zeros (lse 0). Backward overwrites dq, dk, dv.
// Per row and head the arithmetic is: scores s_j = scale * <q, k_j> over the visible keys in key
// order, m = max s_j, p_j = exp(s_j - m), sum in key order, out = sum_j (p_j / sum) v_j in key
// order. attention_decode (the KV-cache path) computes the same numbers, bit for bit.
// The per-element formulas are kernels/attention_math.h (shared with cuda/attention.cu).
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "runtime/cuda_launch.h"

namespace sppo {

struct AttnShape {
  int64_t B, T, nh, nkv, hd;
  double scale;
};

namespace cpu {
template <typename T>
void attention_forward(const AttnShape& s, const T* q, const T* k, const T* v, const uint8_t* mask, T* out, T* lse);
template <typename T>
void attention_backward(const AttnShape& s, const T* q, const T* k, const T* v, const uint8_t* mask, const T* out,
                        const T* lse, const T* dout, T* dq, T* dk, T* dv);
}  // namespace cpu

#ifdef SPPO_WITH_CUDA
namespace cuda {
// cuda/attention.cu: the same contract on device memory, flash-style (tiles of queries x keys in
// shared memory, an online softmax, no [T, T] matrix anywhere), queued without synchronising.
// q, k, v, out, dout, dq, dk, dv are `dtype` (F32, or BF16 in the bf16 mode) with fp32 arithmetic;
// lse is F32. Sums run in a fixed tile order (the same bits every run, no atomics), not the CPU's
// key order, so results agree with the CPU to rounding; for the same reason cuda::attention_decode
// agrees with cuda::attention_forward to rounding, not bit for bit as the CPU pair does. Every
// element of out, lse, dq, dk and dv is written. head_dim <= 256 (kMaxHeadDim).
constexpr int64_t kMaxHeadDim = 256;
void attention_forward(const AttnShape& s, const void* q, const void* k, const void* v, DType dtype,
                       const uint8_t* mask, void* out, float* lse, const Launch& launch);
void attention_backward(const AttnShape& s, const void* q, const void* k, const void* v, DType dtype,
                        const uint8_t* mask, const void* out, const float* lse, const void* dout, void* dq, void* dk,
                        void* dv, const Launch& launch);
}  // namespace cuda
#endif

}  // namespace sppo
