// Row-wise pieces of the Llama layer on the CPU, forward and backward, templated on the scalar
// (float for the model, double for the finite-difference tests).
#pragma once
#include <cstdint>

#include "core/simd.h"

namespace sppo::cpu_model {

// y = x * rsqrt(mean(x^2) + eps) * w over rows of H; rstd [n] saved for backward.
template <typename T>
void rmsnorm_forward(const T* x, const T* w, int64_t n, int64_t H, double eps, T* y, T* rstd);
// dx (+)= d/dx, dw += d/dw, given dy. accumulate_dx: add into dx instead of overwriting.
template <typename T>
void rmsnorm_backward(const T* x, const T* w, const T* rstd, const T* dy, int64_t n, int64_t H, T* dx, T* dw,
                      bool accumulate_dx);

// act = silu(gate) * up.
template <typename T>
void swiglu_forward(const T* gate, const T* up, int64_t count, T* act);
// dgate, dup from dact (may not alias the inputs).
template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dact, int64_t count, T* dgate, T* dup);

// Causal self-attention over a padded batch. q [B*T, nh*hd], k/v [B*T, nkv*hd] (rope applied),
// mask [B*T]; query row t of sequence b sees keys s <= t with mask 1. out [B*T, nh*hd];
// lse [B*T, nh] (log-sum-exp of the scaled scores) for backward. Padding rows give zeros.
struct AttnShape {
  int64_t B, T, nh, nkv, hd;
  double scale;
};
template <typename T>
void attention_forward(const AttnShape& s, const T* q, const T* k, const T* v, const uint8_t* mask, T* out, T* lse);
// dq, dk, dv are overwritten.
template <typename T>
void attention_backward(const AttnShape& s, const T* q, const T* k, const T* v, const uint8_t* mask, const T* out,
                        const T* lse, const T* dout, T* dq, T* dk, T* dv);

#if SPPO_HAVE_AVX2_PATH
// The AVX2 pieces of float attention (hd % 8 == 0), shared by attention_forward and the KV-cache
// decoder so that both give bitwise-equal results. Compiled for "avx2" without "fma": each dot
// product is summed in element order with a rounded multiply then add, like the portable loop.
// Call only after simd::use_avx2().
// sc[j] = scale * <qv, key j> for keys j < n at k + j * kw.
void attention_scores_avx2(const float* qv, const float* k, int64_t n, int64_t hd, int64_t kw, float scale,
                           float* sc);
// o[0..hd) += p * v for one value row.
void add_scaled_row_avx2(float* o, const float* v, float p, int64_t hd);
#endif

}  // namespace sppo::cpu_model
