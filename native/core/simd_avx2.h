// AVX2+FMA building blocks (8 floats per vector): exp, bf16 load/store, horizontal sum, 8x8 transpose.
// Every function is compiled for AVX2 only through its target attribute; call them only from
// other SPPO_TARGET_AVX2 functions, after simd::use_avx2() said yes.
#pragma once
#include "core/simd.h"

#if SPPO_HAVE_AVX2_PATH
#include <immintrin.h>

#include <cstdint>

namespace sppo::simd {

// e^x, within ~1 ulp of std::exp for fp32 (Cephes expf polynomial, FMA range reduction).
// NaN stays NaN, x > 88.72 gives +inf and x < -103.98 gives 0 (as std::exp rounds them);
// between, subnormal results are produced by the two-step scaling below.
SPPO_TARGET_AVX2 inline __m256 exp8(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.72283935546875f), lo = _mm256_set1_ps(-103.972084045410f);
  const __m256 over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ), under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  // max(lo, x) / min(hi, .) keep NaN: these return the second operand when one is NaN.
  __m256 xc = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
  const __m256 fx = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // r = x - n ln2 in two pieces (ln2 = C1 + C2, C1 exact in few bits).
  __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
  // y * 2^n as y * 2^a * 2^b with a = n >> 1, b = n - a: both factors are normal floats for
  // every n in [-150, 128], and only the last multiply rounds (to a subnormal when it must).
  const __m256i n = _mm256_cvtps_epi32(fx);
  const __m256i a = _mm256_srai_epi32(n, 1), b = _mm256_sub_epi32(n, a);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 sa = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(a, bias), 23));
  const __m256 sb = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(b, bias), 23));
  y = _mm256_mul_ps(_mm256_mul_ps(y, sa), sb);
  y = _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_inff()), over);
  return _mm256_blendv_ps(y, _mm256_setzero_ps(), under);
}

// 8 bf16 values (bits) to floats.
SPPO_TARGET_AVX2 inline __m256 load_bf16x8(const uint16_t* p) {
  const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

// 8 floats to bf16 bits, rounding to nearest even; NaN stays a quiet NaN (as f32_to_bf16).
SPPO_TARGET_AVX2 inline void store_bf16x8(uint16_t* p, __m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i rounding = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(_mm256_srli_epi32(u, 16), one));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, rounding), 16);
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  const __m256i abs = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
  const __m256i nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f800000));
  const __m256i h = _mm256_blendv_epi8(rounded, quiet, nan);  // each lane in [0, 0xffff]
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(h, h), 0x08);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
}

// Sum of the 8 lanes in a fixed order.
SPPO_TARGET_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
  return _mm_cvtss_f32(s);
}

// In-register 8 x 8 transpose: on entry x[i] is row i, on return x[c] is column c. Data movement
// only, so it is marked plain "avx2" to inline into the non-FMA attention kernel as well.
__attribute__((target("avx2"))) inline void transpose8x8(__m256 x[8]) {
  __m256 t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(x[i], x[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(x[i], x[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    x[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    x[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    x[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    x[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  // Now x[i] (i < 4) holds rows 0..3 of column i in its low half and of column i+4 in its high
  // half; x[i+4] the same for rows 4..7.
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm256_permute2f128_ps(x[i], x[i + 4], 0x20);
    t[i + 4] = _mm256_permute2f128_ps(x[i], x[i + 4], 0x31);
  }
  for (int i = 0; i < 8; ++i) x[i] = t[i];
}

}  // namespace sppo::simd

#endif  // SPPO_HAVE_AVX2_PATH
