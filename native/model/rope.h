// Rotary position embeddings as transformers computes them (modeling_rope_utils.py): the inverse
// frequencies in float32 for the default, linear and llama3 rope types, and cos/sin tables from
// angle = float32(inv_freq * position), the same single float32 product transformers forms
// (it computes rope in float32 even for a float64 model), so both agree to rounding of cos/sin.
#pragma once
#include <cstdint>
#include <vector>

#include "model/llama_config.h"

namespace sppo {

// head_dim / 2 inverse frequencies.
std::vector<float> rope_inv_freq(const LlamaConfig& c);

// cos/sin [n, head_dim/2] for the given positions (the two halves of head_dim share them).
template <typename T>
void rope_tables(const std::vector<float>& inv_freq, const int64_t* positions, int64_t n, T* cos_out, T* sin_out);

// x [n, heads, head_dim] rotated in place: rotate_half on [first half, second half];
// inverse = true applies the transpose (the backward pass).
template <typename T>
void rope_apply(T* x, int64_t n, int64_t heads, int64_t head_dim, const T* cos_t, const T* sin_t, bool inverse);

}  // namespace sppo
