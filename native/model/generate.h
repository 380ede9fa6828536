// Batched sampling with a paged KV cache (CONTRACT). One call takes a batch of prompts and draws
// `samples` responses from each: a prompt's prefill is computed once and its K samples share its
// cache blocks. Sample k of prompt i draws its uniforms from Philox(seed_i, sequence k, step t)
// (kernels/sample.h), so a sample depends only on its prompt, seed, k and the options: not on the
// rest of the batch, nor on how many samples were asked for.
#pragma once
#include <cstdint>
#include <vector>

#include "model/llama_model.h"

namespace sppo {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  double temperature = 1.0;  // 0 or greedy => argmax
  double top_p = 1.0;
  int64_t top_k = 0;         // 0 = off
  bool greedy = false;
  std::vector<int32_t> eos_ids;
};

struct Generation {
  std::vector<int32_t> tokens;   // generated tokens only (includes the EOS that stopped it)
  std::vector<float> logprobs;   // log-probability of each under the distribution sampled from
  bool stopped_at_eos = false;   // false: hit max_new_tokens
};

// Throws sppo::Error naming the option when it is out of range.
void validate_generate_options(const GenerateOptions& o, int64_t vocab_size);

// Returns prompts.size() * samples generations, prompt-major (sample k of prompt i at i*samples+k).
std::vector<Generation> generate(LlamaModel& model, const std::vector<std::vector<int32_t>>& prompts,
                                 int64_t samples, const std::vector<uint64_t>& seeds, const GenerateOptions& opts);

}  // namespace sppo
