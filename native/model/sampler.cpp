#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"

namespace sppo {

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
  std::vector<double> z(V);
  for (int64_t j = 0; j < V; ++j) z[j] = static_cast<double>(logits[j]) / o.temperature;
  std::vector<char> keep(V, 1);
  if (o.top_k > 0 && o.top_k < V) {
    std::vector<double> tmp(z);
    std::nth_element(tmp.begin(), tmp.begin() + (o.top_k - 1), tmp.end(), std::greater<double>());
    const double kth = tmp[o.top_k - 1];
    for (int64_t j = 0; j < V; ++j) keep[j] = z[j] >= kth;
  }
  if (o.top_p < 1.0) {
    std::vector<int64_t> idx;
    for (int64_t j = 0; j < V; ++j)
      if (keep[j]) idx.push_back(j);
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return z[a] < z[b]; });
    const double m = z[idx.back()];
    double total = 0;
    for (int64_t j : idx) total += std::exp(z[j] - m);
    // Ascending cumulative mass; drop while it stays <= 1 - top_p; the top token always stays.
    double cum = 0;
    for (size_t i = 0; i + 1 < idx.size(); ++i) {
      cum += std::exp(z[idx[i]] - m) / total;
      if (cum <= 1.0 - o.top_p) keep[idx[i]] = 0;
    }
  }
  double m = -INFINITY;
  for (int64_t j = 0; j < V; ++j)
    if (keep[j]) m = std::max(m, z[j]);
  double total = 0;
  for (int64_t j = 0; j < V; ++j)
    if (keep[j]) total += std::exp(z[j] - m);
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total;
  double acc = 0;
  int64_t pick = -1, last = -1;
  for (int64_t j = 0; j < V; ++j) {
    if (!keep[j]) continue;
    last = j;
    acc += std::exp(z[j] - m);
    if (u < acc) {
      pick = j;
      break;
    }
  }
  if (pick < 0) pick = last;  // rounding at the very top of the range
  *logp = static_cast<float>(z[pick] - m - std::log(total));
  return static_cast<int32_t>(pick);
}

}  // namespace sppo
