// CPU (reference) backend of kernels/logprob.h: one row per task, fp32 math, max-subtracted
// softmax. Errors cannot leave an OpenMP region, so rows record problems and we throw after.
#include "kernels/logprob.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "core/simd.h"
#include "core/simd_avx2.h"

namespace sppo {
namespace cpu {
namespace {

// Reads element v of a logits row as float.
inline float load(const void* row, DType dtype, int64_t v) {
  if (dtype == DType::F32) return static_cast<const float*>(row)[v];
  if (dtype == DType::BF16) return bf16_to_f32(static_cast<const uint16_t*>(row)[v]);
  return f16_to_f32(static_cast<const uint16_t*>(row)[v]);
}

inline void store(void* row, DType dtype, int64_t v, float x) {
  if (dtype == DType::F32) static_cast<float*>(row)[v] = x;
  else if (dtype == DType::BF16) static_cast<uint16_t*>(row)[v] = f32_to_bf16(x);
  else static_cast<uint16_t*>(row)[v] = f32_to_f16(x);
}

void check_dtype(DType t, const char* what) {
  SPPO_CHECK(t == DType::F32 || t == DType::BF16 || t == DType::F16, what,
             " must be F32, BF16 or F16 (got ", dtype_name(t), ")");
}

void check_shape_and_labels(int64_t N, int64_t V, const int32_t* labels) {
  SPPO_CHECK(N >= 0, "N must be >= 0 (got ", N, ")");
  SPPO_CHECK(V >= 1, "V must be >= 1 (got ", V, ")");
  SPPO_CHECK(N == 0 || labels != nullptr, "labels must not be null");
  for (int64_t n = 0; n < N; ++n) {
    int32_t y = labels[n];
    SPPO_CHECK(y == kIgnoreIndex || (y >= 0 && y < V), "labels[", n, "] = ", y,
               " is out of range (need 0 <= label < V = ", V, ", or -100 to ignore)");
  }
}

// Row max and whether every element is finite (x * 0 is NaN exactly for inf and NaN).
template <typename Load>
inline void row_max(Load ld, int64_t V, float* max_out, bool* finite_out) {
  constexpr int L = 8;
  float m[L], z[L];
  for (int i = 0; i < L; ++i) m[i] = -std::numeric_limits<float>::infinity(), z[i] = 0.f;
  int64_t v = 0;
  for (; v + L <= V; v += L)
    for (int i = 0; i < L; ++i) {
      float x = ld(v + i);
      m[i] = x > m[i] ? x : m[i];
      z[i] += x * 0.f;
    }
  for (; v < V; ++v) {
    float x = ld(v);
    m[0] = x > m[0] ? x : m[0];
    z[0] += x * 0.f;
  }
  float mm = m[0], zz = 0.f;
  for (int i = 0; i < L; ++i) mm = m[i] > mm ? m[i] : mm, zz += z[i];
  *max_out = mm;
  *finite_out = (zz == 0.f);
}

// The float lane sums are moved into a double every kLseBlock elements. One lane holds the row's
// maximum, exp(0) = 1, and with a vocabulary of 128256 it would otherwise add ~8k terms far below
// its ulp, dropping them: a peaked row (p ~ 0.99, what a trained model gives) came out 1.2e-5 low
// in lse against float64 where the GPU's tree reduction was within 1e-6 (test_logprob_cuda).
constexpr int64_t kLseBlock = 1024;

template <typename Load>
inline float row_lse(Load ld, int64_t V, float mx) {
  constexpr int L = 8;
  float s[L] = {0, 0, 0, 0, 0, 0, 0, 0};
  double sum = 0;
  int64_t v = 0;
  for (; v + L <= V; v += L) {
    for (int i = 0; i < L; ++i) s[i] += std::exp(ld(v + i) - mx);
    if ((v + L) % kLseBlock == 0)
      for (int i = 0; i < L; ++i) sum += s[i], s[i] = 0;
  }
  for (; v < V; ++v) s[0] += std::exp(ld(v) - mx);
  for (int i = 0; i < L; ++i) sum += s[i];
  return mx + static_cast<float>(std::log(sum));
}

#if SPPO_HAVE_AVX2_PATH
// AVX2 row kernels for F32 and BF16 rows (the hot paths): same passes as the portable code,
// with a vectorized exp. Tails go through an 8-float buffer padded with -inf (exp(-inf) = 0).
template <bool kBf16>
SPPO_TARGET_AVX2 inline __m256 load8(const void* row, int64_t v) {
  if (kBf16) return simd::load_bf16x8(static_cast<const uint16_t*>(row) + v);
  return _mm256_loadu_ps(static_cast<const float*>(row) + v);
}

template <bool kBf16>
SPPO_TARGET_AVX2 void row_max_avx2(const void* row, int64_t V, float* max_out, bool* finite_out) {
  __m256 m = _mm256_set1_ps(-std::numeric_limits<float>::infinity()), z = _mm256_setzero_ps();
  int64_t v = 0;
  for (; v + 8 <= V; v += 8) {
    const __m256 x = load8<kBf16>(row, v);
    m = _mm256_max_ps(m, x);
    z = _mm256_add_ps(z, _mm256_mul_ps(x, _mm256_setzero_ps()));  // NaN exactly for inf and NaN
  }
  alignas(32) float mm[8], zz[8];
  _mm256_store_ps(mm, m);
  _mm256_store_ps(zz, z);
  float mx = mm[0], zs = 0.f;
  for (int i = 0; i < 8; ++i) mx = mm[i] > mx ? mm[i] : mx, zs += zz[i];
  const DType dt = kBf16 ? DType::BF16 : DType::F32;
  for (; v < V; ++v) {
    const float x = load(row, dt, v);
    mx = x > mx ? x : mx;
    zs += x * 0.f;
  }
  *max_out = mx;
  *finite_out = (zs == 0.f);
}

template <bool kBf16>
SPPO_TARGET_AVX2 float row_lse_avx2(const void* row, int64_t V, float mx) {
  const __m256 vm = _mm256_set1_ps(mx);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();  // two chains: more lanes, more accurate
  __m256d d[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
  int64_t v = 0;
  for (; v + 16 <= V; v += 16) {
    s0 = _mm256_add_ps(s0, simd::exp8(_mm256_sub_ps(load8<kBf16>(row, v), vm)));
    s1 = _mm256_add_ps(s1, simd::exp8(_mm256_sub_ps(load8<kBf16>(row, v + 8), vm)));
    if ((v + 16) % kLseBlock == 0) {  // the lanes into doubles (see kLseBlock)
      d[0] = _mm256_add_pd(d[0], _mm256_cvtps_pd(_mm256_castps256_ps128(s0)));
      d[1] = _mm256_add_pd(d[1], _mm256_cvtps_pd(_mm256_extractf128_ps(s0, 1)));
      d[2] = _mm256_add_pd(d[2], _mm256_cvtps_pd(_mm256_castps256_ps128(s1)));
      d[3] = _mm256_add_pd(d[3], _mm256_cvtps_pd(_mm256_extractf128_ps(s1, 1)));
      s0 = _mm256_setzero_ps();
      s1 = _mm256_setzero_ps();
    }
  }
  for (; v + 8 <= V; v += 8) s0 = _mm256_add_ps(s0, simd::exp8(_mm256_sub_ps(load8<kBf16>(row, v), vm)));
  if (v < V) {
    alignas(32) float t[8];
    const DType dt = kBf16 ? DType::BF16 : DType::F32;
    for (int i = 0; i < 8; ++i) t[i] = v + i < V ? load(row, dt, v + i) : -std::numeric_limits<float>::infinity();
    s1 = _mm256_add_ps(s1, simd::exp8(_mm256_sub_ps(_mm256_load_ps(t), vm)));
  }
  alignas(32) float a[8], b[8];
  alignas(32) double c[16];
  _mm256_store_ps(a, s0);
  _mm256_store_ps(b, s1);
  for (int i = 0; i < 4; ++i) _mm256_store_pd(c + 4 * i, d[i]);
  double sum = 0;
  for (int i = 0; i < 8; ++i) sum += double(a[i]) + double(b[i]);
  for (int i = 0; i < 16; ++i) sum += c[i];
  return mx + static_cast<float>(std::log(sum));
}

// q[v] = -g exp(p[v] - l) over a row; q may alias p (same dtype).
template <bool kBf16>
SPPO_TARGET_AVX2 void row_backward_avx2(const void* row, void* grow, int64_t V, float g, float l) {
  const __m256 vl = _mm256_set1_ps(l), vng = _mm256_set1_ps(-g);
  int64_t v = 0;
  for (; v + 8 <= V; v += 8) {
    const __m256 q = _mm256_mul_ps(vng, simd::exp8(_mm256_sub_ps(load8<kBf16>(row, v), vl)));
    if (kBf16) simd::store_bf16x8(static_cast<uint16_t*>(grow) + v, q);
    else _mm256_storeu_ps(static_cast<float*>(grow) + v, q);
  }
  if (v < V) {
    alignas(32) float t[8];
    const DType dt = kBf16 ? DType::BF16 : DType::F32;
    for (int i = 0; i < 8; ++i) t[i] = v + i < V ? load(row, dt, v + i) : 0.f;
    _mm256_store_ps(t, _mm256_mul_ps(vng, simd::exp8(_mm256_sub_ps(_mm256_load_ps(t), vl))));
    for (int i = 0; v + i < V; ++i) store(grow, dt, v + i, t[i]);
  }
}
#endif

// Computes lse of row n (validating finiteness); returns false on a non-finite element.
inline bool compute_lse(const void* row, DType dtype, int64_t V, float* lse) {
  float mx;
  bool finite;
#if SPPO_HAVE_AVX2_PATH
  if (simd::use_avx2() && (dtype == DType::F32 || dtype == DType::BF16)) {
    if (dtype == DType::F32) {
      row_max_avx2<false>(row, V, &mx, &finite);
      if (!finite) return false;
      *lse = row_lse_avx2<false>(row, V, mx);
    } else {
      row_max_avx2<true>(row, V, &mx, &finite);
      if (!finite) return false;
      *lse = row_lse_avx2<true>(row, V, mx);
    }
    return true;
  }
#endif
  if (dtype == DType::F32) {
    const float* p = static_cast<const float*>(row);
    auto ld = [p](int64_t v) { return p[v]; };
    row_max(ld, V, &mx, &finite);
    if (!finite) return false;
    *lse = row_lse(ld, V, mx);
  } else if (dtype == DType::BF16) {
    const uint16_t* p = static_cast<const uint16_t*>(row);
    auto ld = [p](int64_t v) { return bf16_to_f32(p[v]); };
    row_max(ld, V, &mx, &finite);
    if (!finite) return false;
    *lse = row_lse(ld, V, mx);
  } else {
    auto ld = [row, dtype](int64_t v) { return load(row, dtype, v); };
    row_max(ld, V, &mx, &finite);
    if (!finite) return false;
    *lse = row_lse(ld, V, mx);
  }
  return true;
}

[[noreturn]] void report_nonfinite(const char* field, const void* data, DType dtype, int64_t row,
                                   int64_t V) {
  const char* base = static_cast<const char*>(data) + row * V * static_cast<int64_t>(dtype_size(dtype));
  for (int64_t v = 0; v < V; ++v) {
    float x = load(base, dtype, v);
    if (!std::isfinite(x)) fail(field, "[", row, ", ", v, "] is not finite (", x, ")");
  }
  fail(field, " row ", row, " is not finite");
}

// Lowest row flagged bad, or -1.
int64_t first_bad(const std::vector<uint8_t>& bad) {
  for (size_t i = 0; i < bad.size(); ++i)
    if (bad[i]) return static_cast<int64_t>(i);
  return -1;
}

}  // namespace

void logprob_forward(const void* logits, DType dtype, int64_t N, int64_t V, const int32_t* labels,
                     float* token_logp, float* lse) {
  check_dtype(dtype, "logits dtype");
  check_shape_and_labels(N, V, labels);
  if (N == 0) return;
  SPPO_CHECK(logits != nullptr, "logits must not be null");
  SPPO_CHECK(token_logp != nullptr, "token_logp must not be null");
  const int64_t row_bytes = V * static_cast<int64_t>(dtype_size(dtype));
  std::vector<uint8_t> bad(static_cast<size_t>(N), 0);
  parallel_for(N, [&](int64_t n) {
    const char* row = static_cast<const char*>(logits) + n * row_bytes;
    float l;
    if (!compute_lse(row, dtype, V, &l)) {
      bad[n] = 1;
      token_logp[n] = std::numeric_limits<float>::quiet_NaN();
      if (lse) lse[n] = token_logp[n];
      return;
    }
    if (lse) lse[n] = l;
    token_logp[n] = labels[n] == kIgnoreIndex ? 0.f : load(row, dtype, labels[n]) - l;
  });
  int64_t b = first_bad(bad);
  if (b >= 0) report_nonfinite("logits", logits, dtype, b, V);
}

void logprob_backward(const void* logits, DType dtype, int64_t N, int64_t V, const int32_t* labels,
                      const float* grad_token, const float* lse, void* grad_logits, DType grad_dtype) {
  check_dtype(dtype, "logits dtype");
  check_dtype(grad_dtype, "grad_logits dtype");
  check_shape_and_labels(N, V, labels);
  if (N == 0) return;
  SPPO_CHECK(logits != nullptr, "logits must not be null");
  SPPO_CHECK(grad_token != nullptr, "grad_token must not be null");
  SPPO_CHECK(grad_logits != nullptr, "grad_logits must not be null");
  SPPO_CHECK(grad_logits != logits || grad_dtype == dtype,
             "in-place backward needs grad_logits dtype == logits dtype (got ", dtype_name(grad_dtype),
             " over ", dtype_name(dtype), ")");
  for (int64_t n = 0; n < N; ++n) {
    if (labels[n] == kIgnoreIndex) continue;
    SPPO_CHECK(std::isfinite(grad_token[n]), "grad_token[", n, "] is not finite (", grad_token[n], ")");
    if (lse) SPPO_CHECK(std::isfinite(lse[n]), "lse[", n, "] is not finite (", lse[n], ")");
  }
  const int64_t row_bytes = V * static_cast<int64_t>(dtype_size(dtype));
  const int64_t grow_bytes = V * static_cast<int64_t>(dtype_size(grad_dtype));
  std::vector<uint8_t> bad(static_cast<size_t>(N), 0);
  parallel_for(N, [&](int64_t n) {
    const char* row = static_cast<const char*>(logits) + n * row_bytes;
    char* grow = static_cast<char*>(grad_logits) + n * grow_bytes;
    const int32_t y = labels[n];
    if (y == kIgnoreIndex) {
      for (int64_t v = 0; v < V; ++v) store(grow, grad_dtype, v, 0.f);
      return;
    }
    float l;
    if (lse) {
      l = lse[n];
    } else if (!compute_lse(row, dtype, V, &l)) {
      bad[n] = 1;
      return;
    }
    const float g = grad_token[n];
    // Read the label logit before the row is overwritten (in place) and write its term last.
    const float xy = load(row, dtype, y);
#if SPPO_HAVE_AVX2_PATH
    if (simd::use_avx2() && dtype == grad_dtype && (dtype == DType::F32 || dtype == DType::BF16)) {
      if (dtype == DType::F32) row_backward_avx2<false>(row, grow, V, g, l);
      else row_backward_avx2<true>(row, grow, V, g, l);
    } else
#endif
    if (dtype == DType::F32 && grad_dtype == DType::F32) {
      const float* p = reinterpret_cast<const float*>(row);
      float* q = reinterpret_cast<float*>(grow);
      for (int64_t v = 0; v < V; ++v) q[v] = -g * std::exp(p[v] - l);
    } else if (dtype == DType::BF16 && grad_dtype == DType::BF16) {
      const uint16_t* p = reinterpret_cast<const uint16_t*>(row);
      uint16_t* q = reinterpret_cast<uint16_t*>(grow);
      for (int64_t v = 0; v < V; ++v) q[v] = f32_to_bf16(-g * std::exp(bf16_to_f32(p[v]) - l));
    } else {
      for (int64_t v = 0; v < V; ++v) store(grow, grad_dtype, v, -g * std::exp(load(row, dtype, v) - l));
    }
    store(grow, grad_dtype, y, g * (1.f - std::exp(xy - l)));
  });
  int64_t b = first_bad(bad);
  if (b >= 0) report_nonfinite("logits", logits, dtype, b, V);
}

void masked_sequence_sum(const float* token_logp, const uint8_t* mask, int64_t B, int64_t T,
                         float* seq_logp) {
  SPPO_CHECK(B >= 0 && T >= 0, "B and T must be >= 0 (got B = ", B, ", T = ", T, ")");
  if (B == 0) return;
  SPPO_CHECK(seq_logp != nullptr, "seq_logp must not be null");
  SPPO_CHECK(T == 0 || (token_logp != nullptr && mask != nullptr), "token_logp and mask must not be null");
  for (int64_t i = 0; i < B * T; ++i) {
    SPPO_CHECK(mask[i] <= 1, "mask[", i / T, ", ", i % T, "] = ", int(mask[i]), " (must be 0 or 1)");
    if (mask[i]) SPPO_CHECK(std::isfinite(token_logp[i]), "token_logp[", i / T, ", ", i % T,
                            "] is not finite (", token_logp[i], ")");
  }
  parallel_for(B, [&](int64_t b) {
    double s = 0;
    for (int64_t t = 0; t < T; ++t)
      if (mask[b * T + t]) s += token_logp[b * T + t];
    seq_logp[b] = static_cast<float>(s);
  });
}

void logprob_forward_f64(const double* logits, int64_t N, int64_t V, const int32_t* labels, double* token_logp,
                         double* lse) {
  check_shape_and_labels(N, V, labels);
  for (int64_t r = 0; r < N; ++r) {
    const double* x = logits + r * V;
    double m = x[0];
    for (int64_t j = 0; j < V; ++j) {
      SPPO_CHECK(std::isfinite(x[j]), "logits[", r, ", ", j, "] is not finite (", x[j], ")");
      m = std::max(m, x[j]);
    }
    double s = 0;
    for (int64_t j = 0; j < V; ++j) s += std::exp(x[j] - m);
    const double l = m + std::log(s);
    if (lse) lse[r] = l;
    token_logp[r] = labels[r] == kIgnoreIndex ? 0.0 : x[labels[r]] - l;
  }
}

void logprob_backward_f64(const double* logits, int64_t N, int64_t V, const int32_t* labels,
                          const double* grad_token, const double* lse, double* grad_logits) {
  check_shape_and_labels(N, V, labels);
  for (int64_t r = 0; r < N; ++r) {
    const double* x = logits + r * V;
    double* d = grad_logits + r * V;
    const int32_t y = labels[r];
    if (y == kIgnoreIndex) {
      for (int64_t j = 0; j < V; ++j) d[j] = 0;
      continue;
    }
    double l;
    if (lse) {
      l = lse[r];
    } else {
      double m = x[0];
      for (int64_t j = 0; j < V; ++j) m = std::max(m, x[j]);
      double s = 0;
      for (int64_t j = 0; j < V; ++j) s += std::exp(x[j] - m);
      l = m + std::log(s);
    }
    const double g = grad_token[r], xy = x[y];
    for (int64_t j = 0; j < V; ++j) d[j] = -g * std::exp(x[j] - l);
    d[y] = g * (1.0 - std::exp(xy - l));
  }
}

}  // namespace cpu
}  // namespace sppo
