// CPU next-token choice (kernels/sample.h): fp32 weights, then the exact integer pick. The
// nucleus is found without sorting the vocabulary: tokens are bucketed by the bit length of
// their weight, whole buckets above the cut are kept, and only the bucket the cut falls in is
// split further, by radix digits. The integer steps and the logp are kernels/sample_math.h's,
// which cuda/sample.cu shares.
#include "kernels/sample.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/philox.h"
#include "core/simd.h"
#include "core/simd_avx2.h"
#include "kernels/cpu/par.h"
#include "kernels/sample_math.h"

namespace sppo::cpu {
namespace {

template <typename T>
void check_row_finite(const T* x, int64_t V, int64_t row) {
  for (int64_t j = 0; j < V; ++j)
    SPPO_CHECK(std::isfinite(x[j]), "generate: the model produced a non-finite logit (", x[j], ") for token ", j,
               " of row ", row, "; are the weights finite?");
}

#if SPPO_HAVE_AVX2_PATH
SPPO_TARGET_AVX2 void weights_avx2(const float* x, int64_t V, float m, float t, float* w) {
  const __m256 vm = _mm256_set1_ps(m), vt = _mm256_set1_ps(t);
  int64_t j = 0;
  for (; j + 8 <= V; j += 8)
    _mm256_storeu_ps(w + j, simd::exp8(_mm256_div_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm), vt)));
  if (j < V) {
    alignas(32) float b[8];
    for (int i = 0; i < 8; ++i) b[i] = j + i < V ? x[j + i] : m;
    _mm256_store_ps(b, simd::exp8(_mm256_div_ps(_mm256_sub_ps(_mm256_load_ps(b), vm), vt)));
    for (int i = 0; j + i < V; ++i) w[j + i] = b[i];
  }
}
#endif

constexpr double kScale = static_cast<double>(uint64_t{1} << kSampleWeightBits);
static_assert(sample_math::kBits == kSampleWeightBits && sample_math::kScale == kScale, "sample_math's q scale");

using sample_math::bit_length;
using sample_math::scaled_draw;

}  // namespace

template <typename T>
void sample_weights(const T* logits, int64_t n, int64_t V, double temperature, float* w) {
  SPPO_CHECK(V >= 1, "sample_weights: vocabulary of ", V, " tokens (needs at least 1)");
  SPPO_CHECK(std::isfinite(temperature) && temperature > 0, "sample_weights: temperature must be > 0 (got ",
             temperature, ")");
  for (int64_t r = 0; r < n; ++r) check_row_finite(logits + r * V, V, r);
  parallel_for_cost(n, 20.0 * V, [&](int64_t r) {
    const T* x = logits + r * V;
    float* wr = w + r * V;
    T m = x[0];
    for (int64_t j = 1; j < V; ++j) m = x[j] > m ? x[j] : m;
    if constexpr (std::is_same_v<T, float>) {
#if SPPO_HAVE_AVX2_PATH
      if (simd::use_avx2()) return weights_avx2(x, V, m, static_cast<float>(temperature), wr);
#endif
      const float t = static_cast<float>(temperature);
      for (int64_t j = 0; j < V; ++j) wr[j] = std::exp((x[j] - m) / t);
    } else {
      for (int64_t j = 0; j < V; ++j) wr[j] = static_cast<float>(std::exp((x[j] - m) / temperature));
    }
  });
}

template <typename T>
void argmax_rows(const T* logits, int64_t n, int64_t V, int32_t* tokens) {
  SPPO_CHECK(V >= 1, "argmax_rows: vocabulary of ", V, " tokens (needs at least 1)");
  for (int64_t r = 0; r < n; ++r) {
    const T* x = logits + r * V;
    check_row_finite(x, V, r);
    int64_t best = 0;
    for (int64_t j = 1; j < V; ++j)
      if (x[j] > x[best]) best = j;
    tokens[r] = static_cast<int32_t>(best);
  }
}

void sample_pick(const float* w, int64_t n, int64_t V, int64_t top_k, double top_p, const SampleStream* streams,
                 int32_t* tokens, float* logp) {
  SPPO_CHECK(V >= 1 && V <= (int64_t{1} << 23), "sample_pick: vocabulary of ", V, " tokens is outside [1, 2^23]");
  SPPO_CHECK(top_k >= 0, "sample_pick: top_k must be >= 0 (got ", top_k, ")");
  SPPO_CHECK(std::isfinite(top_p) && top_p > 0 && top_p <= 1, "sample_pick: top_p must be in (0, 1] (got ", top_p, ")");
  // Validation before the parallel loop (an exception cannot leave an OpenMP region).
  for (int64_t r = 0; r < n; ++r) {
    float mx = 0.f;
    for (int64_t j = 0; j < V; ++j) {
      const float x = w[r * V + j];
      SPPO_CHECK(x >= 0.f && x <= 1.f, "sample_pick: weight ", j, " of row ", r, " is ", x, " (must be in [0, 1])");
      mx = std::max(mx, x);
    }
    SPPO_CHECK(static_cast<double>(mx) * kScale >= 1.0, "sample_pick: row ", r, " has no weight above 2^-40");
  }
  parallel_for_cost(n, 8.0 * V, [&](int64_t r) {
    const float* wr = w + r * V;
    thread_local std::vector<uint64_t> q;
    thread_local std::vector<uint8_t> keep;
    q.resize(V);
    keep.assign(V, 1);
    for (int64_t j = 0; j < V; ++j) {
      q[j] = sample_math::quantize(wr[j]);  // exact: w * 2^40 < 2^53
      if (q[j] == 0) keep[j] = 0;
    }
    if (top_k > 0 && top_k < V) {
      thread_local std::vector<uint64_t> tmp;
      tmp.assign(q.begin(), q.end());
      std::nth_element(tmp.begin(), tmp.begin() + (top_k - 1), tmp.end(), std::greater<uint64_t>());
      const uint64_t kth = tmp[top_k - 1];
      for (int64_t j = 0; j < V; ++j)
        if (q[j] < kth) keep[j] = 0;
    }
    if (top_p < 1.0) {
      uint64_t total = 0;
      uint64_t mass[65] = {};
      for (int64_t j = 0; j < V; ++j)
        if (keep[j]) {
          total += q[j];
          mass[bit_length(q[j])] += q[j];
        }
      const uint64_t need = static_cast<uint64_t>(std::ceil(static_cast<double>(total) * top_p));
      // Buckets from the heaviest down: S = mass of the buckets above the current one.
      uint64_t S = 0;
      int cut = 64;
      for (; cut > 0; --cut) {
        if (S + mass[cut] >= need) break;
        S += mass[cut];
      }
      // Tokens above the cut stay (their prefix sums are < need); below it go; in the cut bucket
      // the walk (q desc, id asc) keeps tokens while the running prefix is < need. That walk is
      // found without sorting: the same split again on 11-bit digits of q below its leading bit,
      // down to tokens of one value (a random model's near-flat weights put most of the
      // vocabulary in one bucket, where a sort would cost V log V per row).
      thread_local std::vector<int32_t> ids, next;
      ids.clear();
      for (int64_t j = 0; j < V; ++j) {
        if (!keep[j]) continue;
        const int b = bit_length(q[j]);
        if (b < cut) keep[j] = 0;
        else if (b == cut) ids.push_back(static_cast<int32_t>(j));
      }
      constexpr int kDigit = 11;
      uint64_t dmass[1 << kDigit];
      for (int hi = cut - 1; hi > 0 && !ids.empty();) {
        const int lo = std::max(0, hi - kDigit);
        const uint64_t mask = (uint64_t{1} << (hi - lo)) - 1;
        const int64_t digits = int64_t{1} << (hi - lo);
        std::fill(dmass, dmass + digits, uint64_t{0});
        for (int32_t j : ids) dmass[(q[j] >> lo) & mask] += q[j];
        int64_t d = digits - 1;
        for (; d > 0; --d) {
          if (S + dmass[d] >= need) break;
          S += dmass[d];
        }
        next.clear();
        for (int32_t j : ids) {  // ids stay in ascending order
          const int64_t dj = static_cast<int64_t>((q[j] >> lo) & mask);
          if (dj < d) keep[j] = 0;
          else if (dj == d) next.push_back(j);
        }
        ids.swap(next);
        hi = lo;
      }
      // One value left: the walk takes them by ascending id.
      for (int32_t j : ids) {
        if (S >= need) keep[j] = 0;
        S += q[j];
      }
    }
    uint64_t kept = 0;
    for (int64_t j = 0; j < V; ++j)
      if (keep[j]) kept += q[j];
    // kept > 0: the heaviest token always survives top-k and top-p, and its q >= 1 (checked above).
    const SampleStream& st = streams[r];
    const uint64_t target = scaled_draw(philox::bits53(philox::draw(st.seed, st.sequence, st.step)), kept);
    uint64_t acc = 0;
    int64_t pick = -1;
    for (int64_t j = 0; j < V; ++j) {
      if (!keep[j]) continue;
      acc += q[j];
      if (acc > target) {
        pick = j;
        break;
      }
    }
    tokens[r] = static_cast<int32_t>(pick);
    logp[r] = sample_math::logp(q[pick], kept);
  });
}

template void sample_weights<float>(const float*, int64_t, int64_t, double, float*);
template void sample_weights<double>(const double*, int64_t, int64_t, double, float*);
template void argmax_rows<float>(const float*, int64_t, int64_t, int32_t*);
template void argmax_rows<double>(const double*, int64_t, int64_t, int32_t*);

}  // namespace sppo::cpu
