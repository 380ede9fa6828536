// Next-token choice for generation, as transformers' logits warpers do it: temperature, then
// top-k (ties with the k-th value kept), then top-p (smallest high-probability set whose mass
// exceeds top_p, at least one token), then a draw from the renormalised distribution.
//
// Randomness: one std::mt19937_64 per sequence seeded with its seed; each draw takes one 64-bit
// output and uses its top 53 bits as a uniform in [0, 1). Tokens are walked in id order.
#pragma once
#include <cstdint>
#include <random>

#include "model/llama.h"

namespace sppo {

// Throws sppo::Error naming the option when it is out of range.
void validate_generate_options(const GenerateOptions& o, int64_t vocab_size);

// Chooses a token from logits [V]; *logp receives its log-probability under the distribution
// sampled from (0 for greedy, a point mass).
int32_t sample_next(const float* logits, int64_t V, const GenerateOptions& o, std::mt19937_64& rng, float* logp);

}  // namespace sppo
