// A model's training state and step (CONTRACT): the gradient arena, the optimizer state, the
// communicator and the bucketed gradient reduction. The trainer owns gradients and optimizer
// state (a model alone has none). Arenas share the model's layout: element offsets are the
// weights' offsets, so each optimizer step is a few flat ranges.
//
// Making a trainer frees the model's decode workspace (LlamaModel::release_decode_workspace): the
// policy's rollout step is not kept resident through training.
//
// A step: accumulate() once per micro-batch (gradients add up); on the step's last micro-batch
// each gradient bucket is queued on the communicator as soon as backward has finished it (last
// layers first) and reduced while backward continues; step() queues any bucket left, waits for
// the reductions, computes the global gradient norm on the backend, clips and updates (a
// non-finite norm skips the update on every rank), gathers shards, zeroes the gradients.
//
// Data parallelism: collectives SUM, they never average. The gradient scale is the caller's: with
// the global batch split over ranks and micro-batches, each micro-batch's `scale` is its share of
// the GLOBAL batch (pairs in it / pairs in the global batch), so that the sum over ranks is the
// global mean (src/stages/train.ts passes it). A rank with no pairs in a step calls step() alone:
// it takes part in every collective with zero gradients.
//
// Ownership (world W > 1): buckets split into W pieces (train/grad_buckets.h); piece r of every
// bucket is rank r's. Each rank sums the squares of its pieces and the partial sums are
// all-reduced, so the global norm is the same number on every rank. Plain data parallel
// all-reduces the buckets and steps the whole arena on every rank; ZeRO-1 reduce-scatters them,
// keeps optimizer state only for its pieces, steps them and all-gathers the weights. Both compute
// exactly the same element sums, norm and update, so they give bitwise-equal weights.
//
// bf16 models (Precision::BF16: bf16 weights, fp32 gradients): the trainer owns an fp32 master
// copy of the weights, laid out like the optimizer state (this rank's owned ranges; under ZeRO-1
// only its pieces) and exposed as the last optimizer slot, "master", so that a checkpoint of the
// state keeps it. It is initialized by widening the model's bf16 weights when the trainer is
// made (as DeepSpeed's bf16 optimizer does; exact when the weights came from bf16 files, and the
// weights must not be written behind the trainer's back afterwards). A step updates the master
// and writes bf16(master) (round to nearest even) into the weights in the same kernel
// (rmsprop.h, adamw.h); ZeRO-1 then all-gathers the bf16 weights. Updates smaller than the
// weights' bf16 resolution accumulate in the master instead of being lost. After the master slot
// is written from outside (a state load), weights_from_master() rewrites the bf16 weights.
//
// bf16 gradients (TrainerOptions::grad_dtype = BF16, bf16 models only): the gradient arena is BF16,
// half the bytes of the fp32 one (a 7B model: 13.5 GiB instead of 27). The master, the optimizer
// state and the step's arithmetic stay fp32: the norm and the optimizer widen each bf16 gradient
// exactly. The trade-off: backward's ops accumulate in fp32 but round into the arena once per call,
// so a parameter's gradient carries one bf16 rounding (2^-9 relative) per op that adds into it per
// micro-batch (one matmul for most weights; the embedding and norms likewise), and gradients
// accumulated across micro-batches round once per accumulation: with k micro-batches, up to k
// roundings of the running sum instead of fp32's. Data parallel sums of bf16 buckets are taken in
// fp32 and rounded once (host: rank order, bitwise deterministic; NCCL: its own bf16 reduction).
// The reduced gradient is then what the step sees, so ZeRO-1 and plain data parallel still agree
// bitwise on the host communicator.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
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
  // The gradient arena's type: unset = the model's dtypes().grad (F32; F64 for the fp64 twin);
  // BF16 for bf16 models only (see the contract above); anything else is refused
  // (resolve_grad_dtype, model/precision.h).
  std::optional<DType> grad_dtype;
};


struct StepResult {
  double grad_norm = 0;  // before clipping
  bool stepped = false;  // false: the norm was not finite and nothing was updated
};

// One bucket of the last step: its index, the seconds since the last micro-batch began (its
// forward) when backward had finished the bucket (and it was queued), and when its reduction had
// finished (NaN where the communicator cannot tell). The order shows that the last layers go first.
struct BucketEvent {
  int bucket = 0;
  double seconds = 0;
  double reduced_seconds = 0;
};

class Trainer {
 public:
  Trainer(LlamaModel& model, std::shared_ptr<Communicator> comm, const TrainerOptions& options);
  ~Trainer();

  LlamaModel& model() { return model_; }
  const TrainerOptions& options() const { return opts_; }
  Communicator& communicator() { return *comm_; }
  bool sharded() const { return sharded_; }  // ZeRO-1 with more than one rank

  // One micro-batch of the preference loss; gradients accumulate, scaled by `scale`. `last`:
  // this is the step's last micro-batch, so buckets are reduced during its backward.
  StepMetrics accumulate(const PairBatch& pairs, LossType type, double beta, double scale, bool last = true);
  StepResult step(double lr, double max_grad_norm);
  void zero_grad();

  DType gradient_dtype() const { return grad_dt_; }
  // The gradient arena. After a last micro-batch its buckets may still be in flight on the
  // communication stream: call finish_collectives() before reading them (under ZeRO-1 only this
  // rank's piece of each bucket holds the reduced sum).
  Tensor gradients() const { return grads_.view(grad_dt_, model_.layout().total()); }
  Tensor gradient(const std::string& name) const;
  void finish_collectives() { comm_->wait(); }
  const std::vector<GradBucket>& buckets() const { return tracker_.buckets(); }
  const std::vector<BucketEvent>& last_bucket_events() const { return events_; }
  BackwardHooks hooks_for_last_micro_batch();  // for callers that run their own forward/backward

  // Optimizer state: slot names, and each slot as one F32/F64 tensor of state_elements(), laid out
  // as owned() says (without ZeRO-1, or alone: one range, the whole arena, so a slot is
  // arena-shaped). The optimizer's slots, then "master" for a bf16 model (master_slot()).
  int64_t step_count() const { return step_count_; }
  std::vector<std::string> slot_names() const;
  Tensor slot(int i) const;
  bool has_master() const { return master_; }
  int master_slot() const;  // the "master" slot's index; -1 without one
  // bf16 models: weights = bf16(master) over the owned ranges, then (ZeRO-1) gathered from every
  // rank: a collective there, which every rank calls. Nothing to do without a master.
  void weights_from_master();
  const std::vector<OwnedRange>& owned() const { return owned_; }
  int64_t state_elements() const { return state_len_; }
  void set_step_count(int64_t n);
  // Sharded state for a checkpoint: every rank calls it (a collective); `host` (arena-sized, may be
  // null on ranks that do not write) receives slot i of every rank.
  void gather_slot(int i, float* host);

 private:
  void reduce_ready(int64_t prefix);
  void gather_weights();

  LlamaModel& model_;
  std::shared_ptr<Communicator> comm_;
  TrainerOptions opts_;
  bool sharded_ = false;
  bool master_ = false;  // the model's weights are bf16: the state's last slot is their fp32 master
  DType grad_dt_ = DType::F32;  // the gradient arena's type (resolve_grad_dtype)
  Buffer grads_, state_, scalars_;
  BucketTracker tracker_;
  std::vector<BucketEvent> events_;
  std::vector<int64_t> event_ops_;  // the communicator's index of each event's collective
  double backward_began_ = 0;
  bool armed_ = false;  // hooks_for_last_micro_batch ran since the last step
  std::vector<OwnedRange> owned_;       // this rank's optimizer ranges
  std::vector<OwnedRange> norm_ranges_;  // this rank's share of the gradient norm
  int64_t state_len_ = 0;
  int64_t step_count_ = 0;
  Workspace loss_ws_, gather_ws_;
};

}  // namespace sppo
