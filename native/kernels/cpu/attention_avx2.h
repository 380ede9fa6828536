// The AVX2 pieces of float attention (head_dim % 8 == 0), shared by attention_forward and the
// paged decoder so that both give bitwise-equal results (defined in attention.cpp). Compiled for
// "avx2" without "fma": each dot product is summed in element order with a rounded multiply then
// add, exactly like the portable loop. Call only after simd::use_avx2().
#pragma once
#include <cstdint>

#include "core/simd.h"

#if SPPO_HAVE_AVX2_PATH
namespace sppo::cpu {

// sc[j] = scale * <qv, key j> for keys j < n at k + j * kw.
void attention_scores_avx2(const float* qv, const float* k, int64_t n, int64_t hd, int64_t kw, float scale,
                           float* sc);
// o[0..hd) += p * v for one value row.
void add_scaled_row_avx2(float* o, const float* v, float p, int64_t hd);

}  // namespace sppo::cpu
#endif
