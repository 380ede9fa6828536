// bench_pairrm's work, independent of the device: the ordered pairs of a row (random token ids in
// PairRM's pair layout), how the judge cuts them into calls (at most `batch` pairs and, unless one
// pair alone is longer, `token_budget` tokens: src/pairrm/batching.ts), the FLOPs of those calls,
// and issue 11's anchor.
//
// FLOPs: 2 per multiply-add of the encoder's matrices (q, k, v, attention output, the two FFN
// matrices), of the attention (q.k and p.v over each sequence's L x L), of the two relative terms
// as transformers computes them (each query against the P projected relative rows: L x P per
// term and head), of the relative projections (P rows through the query and key projections,
// once per call: a call shares them), and of the head (two [2H] -> H -> tasks passes per pair).
// P is the number of relative rows the call's longest sequence reaches (the engine's own count).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "model/pairrm_config.h"
#include "model/relative_position.h"

namespace sppo_bench {

// Issue 11's anchor: all 20 ordered pairs (K = 5) of 20.8k prompts, about 5e17 FLOP, about 28
// minutes at 300 TFLOP/s on one H200; the target is within 1.5x of that time.
struct PairRmAnchor {
  static constexpr double prompts = 20800, pairs_per_prompt = 20, flops = 5e17, tflops = 300, target_ratio = 1.5;
  static constexpr double pairs() { return prompts * pairs_per_prompt; }
  static constexpr double seconds() { return flops / (tflops * 1e12); }
  static constexpr double flops_per_pair() { return flops / pairs(); }
};

// Relative rows the engine projects for a call whose longest sequence has `max_len` tokens.
inline int64_t pairrm_relative_rows(const sppo::PairRmConfig& c, int64_t max_len) {
  const std::vector<int32_t> r = sppo::relative_rows(c, max_len);
  const auto [lo, hi] = std::minmax_element(r.begin(), r.end());
  return static_cast<int64_t>(*hi) - *lo + 1;
}

// One ordered pair of L tokens: everything but the relative projections.
inline double pairrm_pair_flops(const sppo::PairRmConfig& c, double L, double P) {
  const double H = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size);
  const double hd = static_cast<double>(c.head_dim), nh = static_cast<double>(c.num_heads);
  const double rel_terms = (c.c2p ? 1.0 : 0.0) + (c.p2c ? 1.0 : 0.0);
  const double layer = 2.0 * L * (4 * H * H + 2 * H * I) + nh * (2 * 2.0 * L * L * hd + rel_terms * 2.0 * L * P * hd);
  const double head = 2.0 * (2.0 * (2 * H) * H + 2.0 * H * static_cast<double>(c.num_tasks));
  return static_cast<double>(c.num_layers) * layer + head;
}

// The relative projections of one call (P rows through the query and/or key projection, per layer).
inline double pairrm_call_flops(const sppo::PairRmConfig& c, double P) {
  const double H = static_cast<double>(c.hidden_size);
  const double proj = (c.c2p ? 1.0 : 0.0) + (c.p2c ? 1.0 : 0.0);
  return static_cast<double>(c.num_layers) * proj * 2.0 * P * H * H;
}

// The pairs of one row, all of one length, and the calls the judge would make of them.
struct PairRmWork {
  int64_t pairs = 0, L = 0, per_call = 0, rel_rows = 0;
  std::vector<int32_t> tokens, lengths, slots;  // [pairs * L], [pairs], [pairs * 3]
  int64_t calls() const { return (pairs + per_call - 1) / per_call; }
  double tokens_total() const { return static_cast<double>(pairs * L); }
  double flops(const sppo::PairRmConfig& c) const {
    return static_cast<double>(pairs) * pairrm_pair_flops(c, static_cast<double>(L), static_cast<double>(rel_rows)) +
           static_cast<double>(calls()) * pairrm_call_flops(c, static_cast<double>(rel_rows));
  }
};

// Pairs per call under the judge's limits (token_budget 0: none).
inline int64_t pairrm_pairs_per_call(int64_t batch, int64_t token_budget, int64_t L) {
  if (token_budget <= 0) return batch;
  return std::max<int64_t>(1, std::min<int64_t>(batch, token_budget / L));
}

// [CLS] <s> source [SEP] [CLS] <c1> y_i [SEP] [CLS] <c2> y_j [SEP] for K(K-1) pairs per prompt,
// random ids (seeded, so every run times the same tokens); slots at <s>, <c1> and <c2>.
inline PairRmWork make_pairrm_work(const sppo::PairRmConfig& c, int64_t K, int64_t prompts, int64_t src, int64_t cand,
                                   int64_t batch, int64_t token_budget, uint64_t seed = 12345) {
  PairRmWork w;
  w.L = (src + 3) + 2 * (cand + 3);
  w.pairs = prompts * K * (K - 1);
  w.per_call = pairrm_pairs_per_call(batch, token_budget, w.L);
  w.rel_rows = pairrm_relative_rows(c, w.L);
  uint64_t r = seed;
  auto id = [&] {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int32_t>((r >> 33) % static_cast<uint64_t>(c.vocab_size));
  };
  w.tokens.reserve(static_cast<size_t>(w.pairs * w.L));
  for (int64_t p = 0; p < w.pairs; ++p) {
    for (int64_t t = 0; t < w.L; ++t) w.tokens.push_back(id());
    w.lengths.push_back(static_cast<int32_t>(w.L));
    w.slots.insert(w.slots.end(), {1, static_cast<int32_t>(src + 4), static_cast<int32_t>(src + cand + 7)});
  }
  return w;
}

}  // namespace sppo_bench
