// PairRM as the core needs it (CONTRACT): a DeBERTa-v2 encoder (post-LayerNorm, exact GELU,
// relative attention with content-to-position and position-to-content terms sharing the content
// projections, no absolute positions, no token types) and the PairRM head. TypeScript reads
// config.json (src/pairrm/config.ts), refuses what the core does not compute and passes this
// plain struct of resolved values; the core never parses JSON.
#pragma once
#include <cstdint>

namespace sppo {

struct PairRmConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_heads unless config.attention_head_size says otherwise
  double layer_norm_eps = 1e-7;
  // Relative attention. position_buckets > 0: offsets go through DeBERTa's log buckets (exact up
  // to position_buckets / 2, logarithmic up to max_relative_positions) and the span is
  // position_buckets; otherwise offsets are used as they are and the span is
  // max_relative_positions. rel_embeddings has 2 * span rows.
  int64_t position_buckets = 256;
  int64_t max_relative_positions = 512;  // resolved: config's -1 means max_position_embeddings
  bool c2p = true, p2c = true;           // pos_att_type
  bool norm_rel_embeddings = true;       // norm_rel_ebd contains "layer_norm"
  int64_t num_tasks = 1;                 // outputs of the head (PairRM: 1); a comparison averages them
};

// Throws sppo::Error naming the field when the struct is inconsistent.
void validate_config(const PairRmConfig& c);

// Half the number of relative-embedding rows (DeBERTa's att_span).
int64_t relative_span(const PairRmConfig& c);

}  // namespace sppo
