// validate_config: every field the model relies on, with the field named in the error.
#include <cmath>

#include "core/error.h"
#include "model/llama_config.h"

namespace sppo {

void validate_config(const LlamaConfig& c) {
  // Each dimension below 2^31 keeps every tensor size product far from int64 overflow.
  constexpr int64_t kMaxDim = int64_t(1) << 31;
  auto dim = [&](int64_t v, const char* name) {
    SPPO_CHECK(v > 0 && v < kMaxDim, "LlamaConfig.", name, " must be in [1, 2^31), got ", v);
  };
  dim(c.vocab_size, "vocab_size");
  dim(c.hidden_size, "hidden_size");
  dim(c.intermediate_size, "intermediate_size");
  dim(c.num_layers, "num_layers");
  dim(c.num_heads, "num_heads");
  dim(c.num_kv_heads, "num_kv_heads");
  dim(c.head_dim, "head_dim");
  SPPO_CHECK(c.num_heads % c.num_kv_heads == 0, "LlamaConfig.num_heads (", c.num_heads,
             ") must be a multiple of num_kv_heads (", c.num_kv_heads, ")");
  SPPO_CHECK(c.head_dim % 2 == 0, "LlamaConfig.head_dim must be even for rotary embeddings, got ", c.head_dim);
  SPPO_CHECK(c.num_heads * c.head_dim < kMaxDim, "LlamaConfig.num_heads * head_dim is too large");
  SPPO_CHECK(std::isfinite(c.rms_norm_eps) && c.rms_norm_eps > 0, "LlamaConfig.rms_norm_eps must be > 0, got ",
             c.rms_norm_eps);
  SPPO_CHECK(std::isfinite(c.rope_theta) && c.rope_theta > 0, "LlamaConfig.rope_theta must be > 0, got ",
             c.rope_theta);
  const int rt = static_cast<int>(c.rope_type);
  SPPO_CHECK(rt >= 0 && rt <= 2, "LlamaConfig.rope_type must be Default, Linear or Llama3, got ", rt);
  if (c.rope_type != RopeType::Default) {
    SPPO_CHECK(std::isfinite(c.rope_factor) && c.rope_factor > 0, "LlamaConfig.rope_factor must be > 0, got ",
               c.rope_factor);
  }
  if (c.rope_type == RopeType::Llama3) {
    SPPO_CHECK(std::isfinite(c.rope_low_freq_factor) && c.rope_low_freq_factor > 0,
               "LlamaConfig.rope_low_freq_factor must be > 0, got ", c.rope_low_freq_factor);
    SPPO_CHECK(std::isfinite(c.rope_high_freq_factor) && c.rope_high_freq_factor > c.rope_low_freq_factor,
               "LlamaConfig.rope_high_freq_factor must be > rope_low_freq_factor, got ", c.rope_high_freq_factor);
    SPPO_CHECK(c.rope_original_max_position > 0, "LlamaConfig.rope_original_max_position must be > 0, got ",
               c.rope_original_max_position);
  }
  if (c.sequence_classification) {
    SPPO_CHECK(c.num_labels > 0 && c.num_labels < kMaxDim, "LlamaConfig.num_labels must be >= 1, got ",
               c.num_labels);
  }
}

}  // namespace sppo
