// validate_config(PairRmConfig): every field the model relies on, named in the error.
#include <cmath>

#include "core/error.h"
#include "model/pairrm_config.h"

namespace sppo {

void validate_config(const PairRmConfig& c) {
  constexpr int64_t kMaxDim = int64_t(1) << 31;
  auto dim = [&](int64_t v, const char* name) {
    SPPO_CHECK(v > 0 && v < kMaxDim, "PairRmConfig.", name, " must be in [1, 2^31), got ", v);
  };
  dim(c.vocab_size, "vocab_size");
  dim(c.hidden_size, "hidden_size");
  dim(c.intermediate_size, "intermediate_size");
  dim(c.num_layers, "num_layers");
  dim(c.num_heads, "num_heads");
  dim(c.head_dim, "head_dim");
  dim(c.max_relative_positions, "max_relative_positions");
  dim(c.num_tasks, "num_tasks");
  SPPO_CHECK(c.num_heads * c.head_dim == c.hidden_size, "PairRmConfig.num_heads * head_dim (", c.num_heads, " * ",
             c.head_dim, ") must equal hidden_size (", c.hidden_size, "): the relative embeddings go through the "
             "content projections");
  SPPO_CHECK(std::isfinite(c.layer_norm_eps) && c.layer_norm_eps > 0, "PairRmConfig.layer_norm_eps must be > 0, got ",
             c.layer_norm_eps);
  SPPO_CHECK(c.position_buckets < kMaxDim, "PairRmConfig.position_buckets is too large: ", c.position_buckets);
  if (c.position_buckets > 0) {
    // The log buckets divide by log((max_position - 1) / (buckets / 2)).
    SPPO_CHECK(c.position_buckets >= 2 && c.max_relative_positions - 1 > c.position_buckets / 2,
               "PairRmConfig: max_relative_positions - 1 (", c.max_relative_positions - 1,
               ") must exceed position_buckets / 2 (", c.position_buckets / 2, ")");
  }
}

int64_t relative_span(const PairRmConfig& c) {
  return c.position_buckets > 0 ? c.position_buckets : c.max_relative_positions;
}

}  // namespace sppo
