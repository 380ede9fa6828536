// The rotary inverse frequencies of a config as transformers computes them
// (modeling_rope_utils.py), in float32, for the default, linear and llama3 rope types. The tables
// and the rotation are the rope op (kernels/rope.h).
#pragma once
#include <cstdint>
#include <vector>

#include "model/llama_config.h"

namespace sppo {

// head_dim / 2 inverse frequencies.
std::vector<float> rope_inv_freq(const LlamaConfig& c);

}  // namespace sppo
