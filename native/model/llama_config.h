// The Llama-family configuration as the core needs it (CONTRACT). TypeScript reads config.json
// (Llama, Mistral, Llama-3 with rope scaling, sequence classification), validates it and passes
// this plain struct; the core never parses JSON.
#pragma once
#include <cstdint>

namespace sppo {

enum class RopeType : int { Default = 0, Linear = 1, Llama3 = 2 };

struct LlamaConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // grouped-query attention: num_heads % num_kv_heads == 0
  int64_t head_dim = 0;      // usually hidden_size / num_heads, but may differ (config.head_dim)
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeType rope_type = RopeType::Default;
  double rope_factor = 1.0;            // linear and llama3
  double rope_low_freq_factor = 1.0;   // llama3
  double rope_high_freq_factor = 4.0;  // llama3
  int64_t rope_original_max_position = 8192;  // llama3 original_max_position_embeddings
  bool tie_word_embeddings = false;
  // LlamaForSequenceClassification: a `score` head [num_labels, hidden] read at the last
  // non-pad token instead of lm_head.
  bool sequence_classification = false;
  int64_t num_labels = 1;
};

// Throws sppo::Error naming the field when the struct is inconsistent.
void validate_config(const LlamaConfig& c);

}  // namespace sppo
