// Causal self-attention over a padded batch, forward and backward (CONTRACT: cpu/attention.cpp).
//   q [B*T, nh*hd], k/v [B*T, nkv*hd] (rope applied), mask [B*T] (1 = real token). Query row t of
//   sequence b attends to keys s <= t with mask 1; head h reads kv head h / (nh / nkv) (GQA).
//   out [B*T, nh*hd]; lse [B*T, nh] = log-sum-exp of the scaled scores (for backward). Padding
//   rows give zeros (lse 0). Backward overwrites dq, dk, dv.
// Per row and head the arithmetic is: scores s_j = scale * <q, k_j> over the visible keys in key
// order, m = max s_j, p_j = exp(s_j - m), sum in key order, out = sum_j (p_j / sum) v_j in key
// order. attention_decode (the KV-cache path) computes the same numbers, bit for bit.
#pragma once
#include <cstdint>

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

}  // namespace sppo
