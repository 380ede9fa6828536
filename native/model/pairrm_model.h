// PairRM (llm-blender/PairRM): a DeBERTa-v2 encoder and a pairwise head, written once against the
// backend (CONTRACT between the model math and its users: the addon, the tests, the benchmark).
// Inference only: the model owns its weights (one arena, model/pairrm_layout.h) and its
// activations (sized once per batch shape and reused), and nothing for gradients.
//
// A batch is S sequences packed back to back with no padding (every sequence attends only to
// itself, so nothing is computed for padding and a sequence's result is bitwise the same alone or
// in any batch). Each sequence is one ordered pair
//   [CLS] <|source|> x [SEP] [CLS] <|candidate1|> y_i [SEP] [CLS] <|candidate2|> y_j [SEP]
// built by TypeScript (src/pairrm/collator.ts), with the positions of its three slot tokens.
// compare() gives, per sequence, mean over tasks of h([e_s; e_1]) - h([e_s; e_2]) where e are the
// last hidden states at the slots and h(z) = W2 tanh(W1 z + b1) + b2: llm-blender's logit, > 0
// when the first candidate is preferred. Token ids, lengths and slots are checked on the host.
// Results are downloaded once, at the end of a call, which then throws any deferred device error.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "core/cancel.h"
#include "core/tensor.h"
#include "model/pairrm_config.h"
#include "model/pairrm_layout.h"
#include "model/precision.h"

namespace sppo {

struct PairBatch {
  int64_t S = 0;                     // sequences
  const int32_t* lengths = nullptr;  // [S], each >= 1
  const int32_t* tokens = nullptr;   // [sum of lengths], sequence after sequence
  const int32_t* slots = nullptr;    // [S, 3]: positions in each sequence of <|source|>, <|candidate1|>, <|candidate2|>
};

// Planned bytes of a call (checked before allocating; printed by tools).
struct PairRmMemoryPlan {
  std::size_t weights = 0, activations = 0;
  std::size_t total() const { return weights + activations; }
};

class PairRmModel {
 public:
  PairRmModel(std::shared_ptr<Backend> backend, const PairRmConfig& config, Precision precision);
  ~PairRmModel();
  PairRmModel(const PairRmModel&) = delete;
  PairRmModel& operator=(const PairRmModel&) = delete;

  const PairRmConfig& config() const;
  Precision precision() const;
  Dtypes dtypes() const;
  Backend& backend() const;
  const PairRmLayout& layout() const;
  Tensor param(int i) const;
  Tensor param(const std::string& name) const;  // throws when absent

  // Deterministic in seed: matrices Normal(0, std), LayerNorm weights 1, biases 0 (benchmarks).
  void init_random(uint64_t seed, double std = 0.02);
  // The calls that follow check `c` between layers (throw Cancelled).
  void set_cancel(CancelPoint c);

  // Throws sppo::Error naming `what` and the offending sequence or position.
  void check_batch(const PairBatch& b, const char* what) const;

  // Host outputs of F32 or F64. hidden_states: the encoder's last hidden states [N * H] (N = sum
  // of lengths); compare: [S] logits as above.
  void hidden_states(const PairBatch& b, const Tensor& out);
  void compare(const PairBatch& b, const Tensor& out);

  // Working memory a call on `tokens` packed tokens in `sequences` sequences would allocate.
  PairRmMemoryPlan memory_plan(int64_t tokens, int64_t sequences) const;
  // The same without a model (the static planner, train/memory_plan.h).
  static PairRmMemoryPlan plan(const PairRmConfig& config, Precision precision, int64_t tokens, int64_t sequences);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sppo
