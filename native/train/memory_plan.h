// The static memory planner (CONTRACT): what each stage of a run allocates on its backend, in
// bytes, from the configs and options alone, with no model and no allocation (so that a 7B run is
// planned on a laptop: `sppo-native train --dry-run`). Every figure comes from the code that sizes
// the real allocation (model/llama_plans.h, Workspace::allocation, plan_state_layout,
// KVCache::pool_bytes, PairRmModel::plan), so plan and allocation cannot drift; test_memory_plan
// checks them equal on a counting CPU backend.
//
// Precision bf16 plans the trainer's bf16 mode (bf16 weights and activations, fp32 gradients, or
// bf16 ones with grad_dtype BF16, the trainer's fp32 master weights and optimizer state:
// train/trainer.h); ZeRO-1 shards the optimizer
// state and the master weights (rank 0's share, the largest, is planned).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/llama_config.h"
#include "model/pairrm_config.h"
#include "model/precision.h"
#include "train/optimizer_config.h"

namespace sppo {

struct PlanItem {
  std::string name;    // "weights", "gradients", ...
  std::size_t bytes = 0;
  std::string detail;  // how it was sized, for the printed table
};

// A generation plan's paged KV pool, as numbers (its item's detail says the same in words).
struct KvPoolPlan {
  int64_t blocks = 0;      // blocks in the pool
  int64_t block_size = 0;  // positions per block
};

struct StagePlan {
  std::string stage;
  std::vector<PlanItem> items;
  KvPoolPlan kv;  // generation plans only (zeros elsewhere)
  std::size_t total() const;
};

struct TrainingPlanOptions {
  int64_t pairs = 1;       // pairs per micro-batch (each is a chosen and a rejected row)
  int64_t seq_len = 1;     // positions per row (the longest row of the micro-batch)
  bool checkpointing = false;
  OptimizerKind optimizer = OptimizerKind::RMSprop;
  int world = 1;
  bool zero1 = false;
  int64_t bucket_bytes = int64_t{25} << 20;  // TrainerOptions' default
  std::optional<DType> grad_dtype;           // TrainerOptions::grad_dtype (unset: the precision's)
};

// One optimizer step of the policy: weights, master weights (bf16), gradients, optimizer state,
// activations of the largest micro-batch, the log-prob head's chunk, backward temporaries, scratch.
// No decode workspace: a trainer frees the model's when it is made (train/trainer.h).
StagePlan plan_training_memory(const LlamaConfig& c, Precision p, const TrainingPlanOptions& o);

enum class InferenceHead { LogProbs, Scores, Logits };
// One inference call on `rows` sequences of `seq_len` positions (reference log-probs: every
// position but the first may be a response token; a reward model's scores; full logits).
StagePlan plan_inference_memory(const LlamaConfig& c, Precision p, int64_t rows, int64_t seq_len, InferenceHead head);

struct GenerationPlanOptions {
  int64_t prompts = 1;          // prompts per generate call
  int64_t samples = 1;          // K
  int64_t prompt_len = 1;       // the longest prompt
  // The shortest prompt (1 when unknown: a rollout plans before it tokenizes). A shorter prompt
  // may need fewer blocks (more prompts run at once within a KV budget) or more (its samples'
  // tails span one more block), so the plan covers every length in [min_prompt_len, prompt_len].
  int64_t min_prompt_len = 1;
  int64_t max_new_tokens = 1;
  bool greedy = false;
  // GenerateOptions' continuous-batching budgets (0 = automatic; an automatic KV pool is planned
  // at the whole call's need, which the run lowers only when memory is short).
  int64_t max_batch_tokens = 0, max_running_sequences = 0, max_cache_tokens = 0;
  // GenerateOptions::max_swap_tokens (-1 automatic, 0 none): host memory, not planned here, but it
  // lets more prompts run at once (their decode rows are planned). Automatic is planned at its
  // largest (kSwapPools pools), as the host's memory is not read.
  int64_t max_swap_tokens = -1;
  // Decode-only steps padded to buckets (model/decode_buckets.h; GenerateOptions::decode_buckets,
  // automatic on CUDA): the KV cache's scratch block and row, and the buckets' buffer.
  bool decode_buckets = false;
};
// One generate call (model/generate.h, model/scheduler.h): weights, the paged KV cache (the
// budget's pool, allocated whole), the decode step, the logits and the sampler. Exact when every
// prompt has prompt_len tokens (min_prompt_len = prompt_len) and joins in the first step (the
// usual rollout call); otherwise the worst step the budget allows for prompts of any length in
// [min_prompt_len, prompt_len], an upper bound.
StagePlan plan_generation_memory(const LlamaConfig& c, Precision p, const GenerationPlanOptions& o);

// One PairRM compare call of `tokens` packed tokens in `sequences` ordered pairs.
StagePlan plan_pairrm_memory(const PairRmConfig& c, Precision p, int64_t tokens, int64_t sequences);

// Throws sppo::Error when the plan's total exceeds `available` bytes on `device`, with the figures:
// "the training plan needs 97.3 GiB on cuda (weights 13.5 GiB, ...) but 80.1 GiB is available".
void require_plan_fits(const StagePlan& plan, std::size_t available, const std::string& device);
inline void require_plan_fits(const StagePlan& plan, const Backend& be) {
  require_plan_fits(plan, be.available_memory(), be.name());
}

}  // namespace sppo
