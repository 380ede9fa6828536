// A model's training state and step (CONTRACT): the gradient arena, the optimizer state, the
// communicator and the bucketed gradient reduction. The trainer owns gradients and optimizer
// state (a model alone has none). Arenas share the model's layout: element offsets are the
// weights' offsets, so each optimizer step is one flat range, and under ZeRO-1 a rank's range.
//
// A step: accumulate() once per micro-batch (gradients add up); on the step's last micro-batch
// each gradient bucket is all-reduced as soon as backward has finished it (last layers first);
// step() reduces any bucket left, computes the global gradient norm on the backend, clips and
// updates (a non-finite norm skips the update), gathers shards, zeroes the gradients.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/buffer.h"
#include "backend/workspace.h"
#include "comm/communicator.h"
#include "model/llama_model.h"
#include "train/grad_buckets.h"
#include "train/optimizer_config.h"
#include "train/preference_step.h"

namespace sppo {

struct TrainerOptions {
  OptimizerConfig optimizer;
  int64_t bucket_bytes = int64_t{25} << 20;  // gradient bytes per all-reduce bucket
  bool zero1 = false;                         // shard the optimizer state over the ranks
};

struct StepResult {
  double grad_norm = 0;  // before clipping
  bool stepped = false;  // false: the norm was not finite and nothing was updated
};

// One reduced bucket: its index, and the seconds since the backward pass began (for overlap
// measurements); the order shows that the last layers go first.
struct BucketEvent {
  int bucket = 0;
  double seconds = 0;
};

class Trainer {
 public:
  Trainer(LlamaModel& model, std::shared_ptr<Communicator> comm, const TrainerOptions& options);

  LlamaModel& model() { return model_; }
  const TrainerOptions& options() const { return opts_; }
  Communicator& communicator() { return *comm_; }

  // One micro-batch of the preference loss; gradients accumulate, scaled by `scale`. `last`:
  // this is the step's last micro-batch, so buckets are reduced during its backward.
  StepMetrics accumulate(const PairBatch& pairs, LossType type, double beta, double scale, bool last = true);
  StepResult step(double lr, double max_grad_norm);
  void zero_grad();

  Tensor gradients() const { return grads_.view(model_.dtypes().grad, model_.layout().total()); }
  Tensor gradient(const std::string& name) const;
  const std::vector<GradBucket>& buckets() const { return tracker_.buckets(); }
  const std::vector<BucketEvent>& last_bucket_events() const { return events_; }
  BackwardHooks hooks_for_last_micro_batch();  // for callers that run their own forward/backward

  // Optimizer state for checkpoints: slot names, and each slot as an arena-shaped tensor over
  // this rank's range [shard_begin, shard_end).
  int64_t step_count() const { return step_count_; }
  std::vector<std::string> slot_names() const { return optimizer_slots(opts_.optimizer.kind); }
  Tensor slot(int i) const;
  int64_t shard_begin() const { return shard_begin_; }
  int64_t shard_end() const { return shard_end_; }
  void set_step_count(int64_t n);

 private:
  void reduce_ready(int64_t prefix);

  LlamaModel& model_;
  std::shared_ptr<Communicator> comm_;
  TrainerOptions opts_;
  Buffer grads_, state_, scalars_;
  BucketTracker tracker_;
  std::vector<BucketEvent> events_;
  double backward_began_ = 0;
  int64_t shard_begin_ = 0, shard_end_ = 0, shard_len_ = 0;
  int64_t step_count_ = 0;
  Workspace loss_ws_, gather_ws_;
};

}  // namespace sppo
