// The random Llama and the prompts of the CPU rollout benchmarks (bench_generate,
// bench_kv_admission): --layers, --hidden, --vocab give the shape (GQA, 32-wide heads), prompts of
// --min-prompt..--max-prompt random tokens, and EOS ids spread over the vocabulary so that, on a
// near-uniform random model, a sample stops with a chance of about eos/V a step.
#pragma once
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "bench_args.h"
#include "model/generate.h"
#include "model/llama_config.h"

namespace sppo_bench {

inline sppo::LlamaConfig rollout_llama(const Args& a) {
  sppo::LlamaConfig c;
  c.vocab_size = a["vocab"];
  c.hidden_size = a["hidden"];
  c.intermediate_size = c.hidden_size * 11 / 4;
  c.num_layers = a["layers"];
  c.num_heads = std::max<int64_t>(1, c.hidden_size / 32);
  c.num_kv_heads = std::max<int64_t>(1, c.num_heads / 2);
  c.head_dim = c.hidden_size / c.num_heads;
  c.rope_theta = 500000;
  return c;
}

struct RolloutPrompts {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<uint64_t> seeds;  // prompt i's seed is i
};

inline RolloutPrompts rollout_prompts(const Args& a, int64_t vocab, uint64_t seed) {
  std::mt19937_64 g(seed);
  RolloutPrompts p;
  for (int64_t i = 0; i < a["prompts"]; ++i) {
    const int64_t len = a["min-prompt"] + static_cast<int64_t>(g() % (a["max-prompt"] - a["min-prompt"] + 1));
    std::vector<int32_t> t(static_cast<size_t>(len));
    for (auto& x : t) x = static_cast<int32_t>(g() % vocab);
    p.tokens.push_back(std::move(t));
    p.seeds.push_back(static_cast<uint64_t>(i));
  }
  return p;
}

// Sampling at temperature 1 with --new tokens at most and --eos ids spread over the vocabulary.
inline sppo::GenerateOptions rollout_options(const Args& a, int64_t vocab) {
  sppo::GenerateOptions o;
  o.max_new_tokens = a["new"];
  o.temperature = 1.0;
  for (int64_t i = 0; i < a["eos"]; ++i) o.eos_ids.push_back(static_cast<int32_t>(i * (vocab / a["eos"])));
  return o;
}

}  // namespace sppo_bench
