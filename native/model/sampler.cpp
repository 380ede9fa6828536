#include "model/sampler.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "core/error.h"

namespace sppo {

namespace {

// LSD radix sort of (key, id) by key, 11 bits a pass: stable, so equal keys keep their order.
template <typename K>
void radix_sort(std::vector<K>& key, std::vector<int32_t>& id) {
  constexpr int kBits = 11, kPasses = (8 * sizeof(K) + kBits - 1) / kBits;
  const size_t n = key.size();
  std::vector<uint32_t> hist(kPasses << kBits, 0);
  for (K k : key)
    for (int d = 0; d < kPasses; ++d) ++hist[(d << kBits) + ((k >> (kBits * d)) & ((1u << kBits) - 1))];
  std::vector<K> key2(n);
  std::vector<int32_t> id2(n);
  for (int d = 0; d < kPasses; ++d) {
    uint32_t* h = hist.data() + (d << kBits);
    uint32_t sum = 0;
    bool trivial = false;
    for (uint32_t b = 0; b < (1u << kBits); ++b) {
      const uint32_t c = h[b];
      trivial |= c == n;  // every key has this digit: the pass would move nothing
      h[b] = sum;
      sum += c;
    }
    if (trivial) continue;
    for (size_t i = 0; i < n; ++i) {
      const uint32_t at = h[(key[i] >> (kBits * d)) & ((1u << kBits) - 1)]++;
      key2[at] = key[i];
      id2[at] = id[i];
    }
    key.swap(key2);
    id.swap(id2);
  }
}

// Order-preserving unsigned keys (-0 and +0 compare equal, so they share one).
uint32_t order_key(float v) {
  if (v == 0.0f) v = 0.0f;
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b >> 31 ? ~b : b | (uint32_t{1} << 31);
}
uint64_t order_key(double v) {
  if (v == 0.0) v = 0.0;
  uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b >> 63 ? ~b : b | (uint64_t{1} << 63);
}

// Ids j with keep[j], ordered by ascending z[j] with ties in id order: what a stable sort by z
// gives. z = logit / temperature orders like the float logits unless the division merged two
// distinct logits (overflow or underflow), so sort the 32-bit logits and check that; else sort z.
std::vector<int32_t> ascending_kept(const float* logits, const std::vector<double>& z, const std::vector<char>& keep) {
  SPPO_CHECK(z.size() <= static_cast<size_t>(INT32_MAX), "generate: vocabulary of ", z.size(),
             " tokens is too large for top-p sampling");
  std::vector<uint32_t> key;
  std::vector<int32_t> id;
  key.reserve(z.size());
  id.reserve(z.size());
  for (size_t j = 0; j < z.size(); ++j)
    if (keep[j]) {
      key.push_back(order_key(logits[j]));
      id.push_back(static_cast<int32_t>(j));
    }
  const std::vector<int32_t> ids = id;
  radix_sort(key, id);
  bool same = true;
  for (size_t i = 0; i + 1 < id.size() && same; ++i)
    same = key[i] == key[i + 1] || z[id[i]] < z[id[i + 1]];
  if (same) return id;
  std::vector<uint64_t> key64;
  key64.reserve(ids.size());
  for (int32_t j : ids) key64.push_back(order_key(z[j]));
  id = ids;
  radix_sort(key64, id);
  return id;
}

}  // namespace

void validate_generate_options(const GenerateOptions& o, int64_t V) {
  SPPO_CHECK(o.max_new_tokens >= 0, "generate: max_new_tokens must be >= 0, got ", o.max_new_tokens);
  SPPO_CHECK(std::isfinite(o.temperature) && o.temperature >= 0, "generate: temperature must be >= 0, got ",
             o.temperature);
  SPPO_CHECK(std::isfinite(o.top_p) && o.top_p > 0 && o.top_p <= 1, "generate: top_p must be in (0, 1], got ",
             o.top_p);
  SPPO_CHECK(o.top_k >= 0, "generate: top_k must be >= 0, got ", o.top_k);
  for (size_t i = 0; i < o.eos_ids.size(); ++i)
    SPPO_CHECK(o.eos_ids[i] >= 0 && o.eos_ids[i] < V, "generate: eos_ids[", i, "] = ", o.eos_ids[i],
               " is outside the vocabulary [0, ", V, ")");
}

int32_t sample_next(const float* logits, int64_t V, const GenerateOptions& o, std::mt19937_64& rng, float* logp) {
  for (int64_t j = 0; j < V; ++j)
    SPPO_CHECK(std::isfinite(logits[j]), "generate: the model produced a non-finite logit (", logits[j],
               ") for token ", j, "; are the weights finite?");
  if (o.greedy || o.temperature == 0.0) {
    int64_t best = 0;
    for (int64_t j = 1; j < V; ++j)
      if (logits[j] > logits[best]) best = j;
    *logp = 0.0f;
    return static_cast<int32_t>(best);
  }
  std::vector<double> z(V), e(V);
  for (int64_t j = 0; j < V; ++j) z[j] = static_cast<double>(logits[j]) / o.temperature;
  // Every pass below shifts by the largest z (top-k and top-p always keep it), so exp(z - m)
  // is computed once per token and reused: the same values the three passes used to recompute.
  double m = -INFINITY;
  for (int64_t j = 0; j < V; ++j) m = std::max(m, z[j]);
  for (int64_t j = 0; j < V; ++j) e[j] = std::exp(z[j] - m);
  std::vector<char> keep(V, 1);
  if (o.top_k > 0 && o.top_k < V) {
    std::vector<double> tmp(z);
    std::nth_element(tmp.begin(), tmp.begin() + (o.top_k - 1), tmp.end(), std::greater<double>());
    const double kth = tmp[o.top_k - 1];
    for (int64_t j = 0; j < V; ++j) keep[j] = z[j] >= kth;
  }
  if (o.top_p < 1.0) {
    // Kept ids by ascending z, ties in id order (a stable sort); summed in that order.
    const std::vector<int32_t> idx = ascending_kept(logits, z, keep);
    double total = 0;
    for (int32_t j : idx) total += e[j];
    // Ascending cumulative mass; drop while it stays <= 1 - top_p; the top token always stays.
    double cum = 0;
    for (size_t i = 0; i + 1 < idx.size(); ++i) {
      cum += e[idx[i]] / total;
      if (cum <= 1.0 - o.top_p) keep[idx[i]] = 0;
    }
  }
  // The largest kept z in id order, as before: equal to m, but it fixes the sign of a zero logp.
  double mk = -INFINITY, total = 0;
  for (int64_t j = 0; j < V; ++j)
    if (keep[j]) {
      mk = std::max(mk, z[j]);
      total += e[j];
    }
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total;
  double acc = 0;
  int64_t pick = -1, last = -1;
  for (int64_t j = 0; j < V; ++j) {
    if (!keep[j]) continue;
    last = j;
    acc += e[j];
    if (u < acc) {
      pick = j;
      break;
    }
  }
  if (pick < 0) pick = last;  // rounding at the very top of the range
  *logp = static_cast<float>(z[pick] - mk - std::log(total));
  return static_cast<int32_t>(pick);
}

}  // namespace sppo
