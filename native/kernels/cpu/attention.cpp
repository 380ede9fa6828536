// CPU causal attention forward and backward (kernels/attention.h). Forward: one task per (row,
// head); backward: one task per (sequence, kv head), which owns that head's dk/dv and its query
// heads' dq. float with head_dim % 8 == 0 takes AVX2 paths bitwise equal to the portable loops'
// arithmetic (attention_avx2.h, shared with the paged decoder).
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/simd.h"
#include "core/simd_avx2.h"
#include "kernels/attention_math.h"
#include "kernels/cpu/attention_avx2.h"
#include "kernels/cpu/par.h"

namespace sppo::cpu {

#if SPPO_HAVE_AVX2_PATH
__attribute__((target("avx2"))) void attention_scores_avx2(const float* qv, const float* k, int64_t n,
                                                           int64_t hd, int64_t kw, float scale, float* sc) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {  // 8 keys at once, one per lane
    __m256 d = _mm256_setzero_ps();
    for (int64_t i = 0; i < hd; i += 8) {
      __m256 col[8];  // row l: key j + l; after the transpose col[c] lane l = key j + l, element i + c
      for (int l = 0; l < 8; ++l) col[l] = _mm256_loadu_ps(k + (j + l) * kw + i);
      simd::transpose8x8(col);
      for (int c = 0; c < 8; ++c) d = _mm256_add_ps(d, _mm256_mul_ps(_mm256_set1_ps(qv[i + c]), col[c]));
    }
    _mm256_storeu_ps(sc + j, _mm256_mul_ps(d, _mm256_set1_ps(scale)));
  }
  for (; j < n; ++j) {
    const float* kv = k + j * kw;
    float d = 0;
    for (int64_t i = 0; i < hd; ++i) d = d + qv[i] * kv[i];
    sc[j] = d * scale;
  }
}

__attribute__((target("avx2"))) void add_scaled_row_avx2(float* o, const float* v, float p, int64_t hd) {
  const __m256 pv = _mm256_set1_ps(p);
  for (int64_t i = 0; i < hd; i += 8)
    _mm256_storeu_ps(o + i, _mm256_add_ps(_mm256_loadu_ps(o + i), _mm256_mul_ps(pv, _mm256_loadu_ps(v + i))));
}

namespace {
// attention_forward's task for float with hd % 8 == 0, bitwise equal to the portable loop.
void attention_forward_task_avx2(const AttnShape& s, const float* q, const float* k, const float* v,
                                 const uint8_t* mask, float* out, float* lse, int64_t row, int64_t h, float* sc) {
  const int64_t group = s.nh / s.nkv, qw = s.nh * s.hd, kw = s.nkv * s.hd, hd = s.hd;
  const int64_t b = row / s.T, t = row % s.T, g = h / group;
  float* o = out + row * qw + h * hd;
  attention_scores_avx2(q + row * qw + h * hd, k + b * s.T * kw + g * hd, t + 1, hd, kw,
                        static_cast<float>(s.scale), sc);
  // From here on, the portable loop's scalar steps (keys with mask 0 are skipped).
  float m = -INFINITY;
  for (int64_t jj = 0; jj <= t; ++jj)
    if (mask[b * s.T + jj]) m = std::max(m, sc[jj]);
  float sum = 0;
  for (int64_t jj = 0; jj <= t; ++jj) {
    if (!mask[b * s.T + jj]) continue;
    sc[jj] = attention_math::weight(sc[jj], m);
    sum += sc[jj];
  }
  const float inv = 1.f / sum;
  for (int64_t jj = 0; jj <= t; ++jj) {
    const int64_t kr = b * s.T + jj;
    if (mask[kr]) add_scaled_row_avx2(o, v + kr * kw + g * hd, sc[jj] * inv, hd);
  }
  lse[row * s.nh + h] = attention_math::lse(m, sum);
}
}  // namespace
#endif

template <typename T>
void attention_forward(const AttnShape& s, const T* q, const T* k, const T* v, const uint8_t* mask, T* out, T* lse) {
  const int64_t group = s.nh / s.nkv, qw = s.nh * s.hd, kw = s.nkv * s.hd;
  const T scale = static_cast<T>(s.scale);
  parallel_for_cost(s.B * s.T * s.nh, 2.0 * s.T * s.hd, [&](int64_t idx) {
    const int64_t h = idx % s.nh, row = idx / s.nh, b = row / s.T, t = row % s.T, g = h / group;
    T* o = out + row * qw + h * s.hd;
    std::fill(o, o + s.hd, T(0));
    if (!mask[row]) {
      lse[row * s.nh + h] = 0;
      return;
    }
    thread_local std::vector<T> sc;  // scores, reused across tasks instead of one allocation each
    if (static_cast<int64_t>(sc.size()) < t + 1) sc.resize(t + 1);
#if SPPO_HAVE_AVX2_PATH
    if constexpr (std::is_same_v<T, float>) {
      if (s.hd % 8 == 0 && simd::use_avx2())
        return attention_forward_task_avx2(s, q, k, v, mask, out, lse, row, h, sc.data());
    }
#endif
    const T* qv = q + row * qw + h * s.hd;
    T m = -INFINITY;
    for (int64_t j = 0; j <= t; ++j) {
      const int64_t kr = b * s.T + j;
      if (!mask[kr]) continue;
      const T* kv = k + kr * kw + g * s.hd;
      T d = 0;
      for (int64_t i = 0; i < s.hd; ++i) d += qv[i] * kv[i];
      sc[j] = attention_math::score(d, scale);
      m = std::max(m, sc[j]);
    }
    T sum = 0;
    for (int64_t j = 0; j <= t; ++j) {
      const int64_t kr = b * s.T + j;
      if (!mask[kr]) continue;
      sc[j] = attention_math::weight(sc[j], m);
      sum += sc[j];
    }
    const T inv = T(1) / sum;
    for (int64_t j = 0; j <= t; ++j) {
      const int64_t kr = b * s.T + j;
      if (!mask[kr]) continue;
      const T p = sc[j] * inv;
      const T* vv = v + kr * kw + g * s.hd;
      for (int64_t i = 0; i < s.hd; ++i) o[i] += p * vv[i];
    }
    lse[row * s.nh + h] = attention_math::lse(m, sum);
  });
}

#if SPPO_HAVE_AVX2_PATH
// attention_backward's task (sequence b, kv head g) for float with hd % 8 == 0: the same
// loops, with 8-lane FMA dot products and updates.
SPPO_TARGET_AVX2 void attention_backward_task_avx2(const AttnShape& s, const float* q, const float* k,
                                                   const float* v, const uint8_t* mask, const float* out,
                                                   const float* lse, const float* dout, float* dq, float* dk,
                                                   float* dv, int64_t b, int64_t g) {
  const int64_t group = s.nh / s.nkv, qw = s.nh * s.hd, kw = s.nkv * s.hd, hd = s.hd;
  const float scale = static_cast<float>(s.scale);
  for (int64_t h = g * group; h < (g + 1) * group; ++h) {
    for (int64_t t = 0; t < s.T; ++t) {
      const int64_t row = b * s.T + t;
      if (!mask[row]) continue;
      const float* qv = q + row * qw + h * hd;
      const float* dov = dout + row * qw + h * hd;
      const float* ov = out + row * qw + h * hd;
      const float l = lse[row * s.nh + h];
      __m256 acc = _mm256_setzero_ps();
      for (int64_t i = 0; i < hd; i += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(dov + i), _mm256_loadu_ps(ov + i), acc);
      const float D = simd::hsum8(acc);  // sum_j p_j dp_j = dout . out
      float* dqv = dq + row * qw + h * hd;
      for (int64_t j = 0; j <= t; ++j) {
        const int64_t kr = b * s.T + j;
        if (!mask[kr]) continue;
        const float* kv = k + kr * kw + g * hd;
        const float* vv = v + kr * kw + g * hd;
        __m256 ad = _mm256_setzero_ps(), ae = _mm256_setzero_ps();
        for (int64_t i = 0; i < hd; i += 8) {
          ad = _mm256_fmadd_ps(_mm256_loadu_ps(qv + i), _mm256_loadu_ps(kv + i), ad);
          ae = _mm256_fmadd_ps(_mm256_loadu_ps(dov + i), _mm256_loadu_ps(vv + i), ae);
        }
        const float d = simd::hsum8(ad), e = simd::hsum8(ae);
        const float pj = attention_math::prob(d, scale, l);
        const __m256 ds = _mm256_set1_ps(attention_math::dscore(pj, e, D, scale)), p8 = _mm256_set1_ps(pj);
        float* dkv = dk + kr * kw + g * hd;
        float* dvv = dv + kr * kw + g * hd;
        for (int64_t i = 0; i < hd; i += 8) {
          _mm256_storeu_ps(dqv + i, _mm256_fmadd_ps(ds, _mm256_loadu_ps(kv + i), _mm256_loadu_ps(dqv + i)));
          _mm256_storeu_ps(dkv + i, _mm256_fmadd_ps(ds, _mm256_loadu_ps(qv + i), _mm256_loadu_ps(dkv + i)));
          _mm256_storeu_ps(dvv + i, _mm256_fmadd_ps(p8, _mm256_loadu_ps(dov + i), _mm256_loadu_ps(dvv + i)));
        }
      }
    }
  }
}
#endif

template <typename T>
void attention_backward(const AttnShape& s, const T* q, const T* k, const T* v, const uint8_t* mask, const T* out,
                        const T* lse, const T* dout, T* dq, T* dk, T* dv) {
  const int64_t group = s.nh / s.nkv, qw = s.nh * s.hd, kw = s.nkv * s.hd;
  const T scale = static_cast<T>(s.scale);
  std::fill(dq, dq + s.B * s.T * qw, T(0));
  std::fill(dk, dk + s.B * s.T * kw, T(0));
  std::fill(dv, dv + s.B * s.T * kw, T(0));
  // One task per (sequence, kv head) owns that head's dk/dv and its query heads' dq.
  parallel_for_cost(s.B * s.nkv, 4.0 * s.T * s.T * s.hd * (s.nh / s.nkv), [&](int64_t task) {
    const int64_t b = task / s.nkv, g = task % s.nkv;
#if SPPO_HAVE_AVX2_PATH
    if constexpr (std::is_same_v<T, float>) {
      if (s.hd % 8 == 0 && simd::use_avx2())
        return attention_backward_task_avx2(s, q, k, v, mask, out, lse, dout, dq, dk, dv, b, g);
    }
#endif
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      for (int64_t t = 0; t < s.T; ++t) {
        const int64_t row = b * s.T + t;
        if (!mask[row]) continue;
        const T* qv = q + row * qw + h * s.hd;
        const T* dov = dout + row * qw + h * s.hd;
        const T* ov = out + row * qw + h * s.hd;
        const T l = lse[row * s.nh + h];
        T D = 0;  // sum_j p_j dp_j = dout . out
        for (int64_t i = 0; i < s.hd; ++i) D += dov[i] * ov[i];
        T* dqv = dq + row * qw + h * s.hd;
        for (int64_t j = 0; j <= t; ++j) {
          const int64_t kr = b * s.T + j;
          if (!mask[kr]) continue;
          const T* kv = k + kr * kw + g * s.hd;
          const T* vv = v + kr * kw + g * s.hd;
          T d = 0, e = 0;
          for (int64_t i = 0; i < s.hd; ++i) {
            d += qv[i] * kv[i];
            e += dov[i] * vv[i];
          }
          const T pj = attention_math::prob(d, scale, l);
          const T ds = attention_math::dscore(pj, e, D, scale);
          T* dkv = dk + kr * kw + g * s.hd;
          T* dvv = dv + kr * kw + g * s.hd;
          for (int64_t i = 0; i < s.hd; ++i) {
            dqv[i] += ds * kv[i];
            dkv[i] += ds * qv[i];
            dvv[i] += pj * dov[i];
          }
        }
      }
    }
  });
}

template void attention_forward<float>(const AttnShape&, const float*, const float*, const float*, const uint8_t*,
                                       float*, float*);
template void attention_forward<double>(const AttnShape&, const double*, const double*, const double*,
                                        const uint8_t*, double*, double*);
template void attention_backward<float>(const AttnShape&, const float*, const float*, const float*, const uint8_t*,
                                        const float*, const float*, const float*, float*, float*, float*);
template void attention_backward<double>(const AttnShape&, const double*, const double*, const double*,
                                         const uint8_t*, const double*, const double*, const double*, double*,
                                         double*, double*);

}  // namespace sppo::cpu
