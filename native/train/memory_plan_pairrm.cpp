// plan_pairrm_memory (train/memory_plan.h), apart from the Llama stages because PairRM's batch type
// shares its name with the preference step's.
#include "core/error.h"
#include "model/pairrm_model.h"
#include "train/memory_plan.h"

namespace sppo {

StagePlan plan_pairrm_memory(const PairRmConfig& c, Precision p, int64_t tokens, int64_t sequences) {
  SPPO_CHECK(tokens >= 1, "memory plan: tokens must be >= 1, got ", tokens);
  SPPO_CHECK(sequences >= 1, "memory plan: sequences must be >= 1, got ", sequences);
  const PairRmMemoryPlan m = PairRmModel::plan(c, p, tokens, sequences);
  StagePlan s;
  s.stage = "pairrm";
  s.items.push_back({"weights", m.weights, std::string("DeBERTa-v2 encoder + PairRM head, ") + dtype_name(dtypes_of(p).weight)});
  s.items.push_back({"activations", m.activations,
                     std::to_string(tokens) + " packed tokens in " + std::to_string(sequences) + " ordered pairs"});
  return s;
}

}  // namespace sppo
