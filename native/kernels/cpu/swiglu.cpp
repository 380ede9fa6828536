// CPU SwiGLU forward and backward (kernels/swiglu.h), with an AVX2 path on the vectorized exp.
#include "kernels/swiglu.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/simd.h"
#include "core/simd_avx2.h"
#include "kernels/cpu/par.h"
#include "kernels/swiglu_math.h"

namespace sppo::cpu {
namespace {

#if SPPO_HAVE_AVX2_PATH
// swiglu on [i0, i1) with the vectorized exp. The ragged end goes through a padded buffer so
// that every element gets the same arithmetic wherever it sits (the KV-cache decoder calls
// swiglu_forward on single rows and must match the full forward).
SPPO_TARGET_AVX2 inline __m256 swiglu8(__m256 g, __m256 u) {
  const __m256 one = _mm256_set1_ps(1.f);
  const __m256 e = simd::exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), u);
}

SPPO_TARGET_AVX2 void swiglu_forward_avx2(const float* gate, const float* up, int64_t i0, int64_t i1, float* act) {
  int64_t i = i0;
  for (; i + 8 <= i1; i += 8) _mm256_storeu_ps(act + i, swiglu8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (i < i1) {
    alignas(32) float g[8] = {}, u[8] = {};
    for (int l = 0; i + l < i1; ++l) g[l] = gate[i + l], u[l] = up[i + l];
    _mm256_store_ps(g, swiglu8(_mm256_load_ps(g), _mm256_load_ps(u)));
    for (int l = 0; i + l < i1; ++l) act[i + l] = g[l];
  }
}

SPPO_TARGET_AVX2 inline void swiglu_backward8(const float* gate, const float* up, const float* dact, float* dgate,
                                              float* dup) {
  const __m256 one = _mm256_set1_ps(1.f);
  const __m256 g = _mm256_loadu_ps(gate), u = _mm256_loadu_ps(up), da = _mm256_loadu_ps(dact);
  const __m256 sig = _mm256_div_ps(one, _mm256_add_ps(one, simd::exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
  _mm256_storeu_ps(dup, _mm256_mul_ps(da, _mm256_mul_ps(g, sig)));
  const __m256 t = _mm256_add_ps(one, _mm256_mul_ps(g, _mm256_sub_ps(one, sig)));
  _mm256_storeu_ps(dgate, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(da, u), sig), t));
}

SPPO_TARGET_AVX2 void swiglu_backward_avx2(const float* gate, const float* up, const float* dact, int64_t i0,
                                           int64_t i1, float* dgate, float* dup) {
  int64_t i = i0;
  for (; i + 8 <= i1; i += 8) swiglu_backward8(gate + i, up + i, dact + i, dgate + i, dup + i);
  if (i < i1) {
    alignas(32) float g[8] = {}, u[8] = {}, d[8] = {}, og[8], ou[8];
    for (int l = 0; i + l < i1; ++l) g[l] = gate[i + l], u[l] = up[i + l], d[l] = dact[i + l];
    swiglu_backward8(g, u, d, og, ou);
    for (int l = 0; i + l < i1; ++l) dgate[i + l] = og[l], dup[i + l] = ou[l];
  }
}
#endif

}  // namespace

template <typename T>
void swiglu_forward(const T* gate, const T* up, int64_t count, T* act) {
  constexpr int64_t kChunk = 4096;
  parallel_for_cost((count + kChunk - 1) / kChunk, 20.0 * kChunk, [&](int64_t c) {
    const int64_t i1 = std::min(count, (c + 1) * kChunk);
#if SPPO_HAVE_AVX2_PATH
    if constexpr (std::is_same_v<T, float>) {
      if (simd::use_avx2()) return swiglu_forward_avx2(gate, up, c * kChunk, i1, act);
    }
#endif
    for (int64_t i = c * kChunk; i < i1; ++i) act[i] = swiglu_math::forward(gate[i], up[i]);
  });
}

template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dact, int64_t count, T* dgate, T* dup) {
  constexpr int64_t kChunk = 4096;
  parallel_for_cost((count + kChunk - 1) / kChunk, 20.0 * kChunk, [&](int64_t c) {
    const int64_t i1 = std::min(count, (c + 1) * kChunk);
#if SPPO_HAVE_AVX2_PATH
    if constexpr (std::is_same_v<T, float>) {
      if (simd::use_avx2()) return swiglu_backward_avx2(gate, up, dact, c * kChunk, i1, dgate, dup);
    }
#endif
    for (int64_t i = c * kChunk; i < i1; ++i) swiglu_math::backward(gate[i], up[i], dact[i], dgate[i], dup[i]);
  });
}

template void swiglu_forward<float>(const float*, const float*, int64_t, float*);
template void swiglu_forward<double>(const double*, const double*, int64_t, double*);
template void swiglu_backward<float>(const float*, const float*, const float*, int64_t, float*, float*);
template void swiglu_backward<double>(const double*, const double*, const double*, int64_t, double*, double*);

}  // namespace sppo::cpu
