// A Llama-family decoder written once against the backend (CONTRACT between the model math and
// its users: the preference step, generation, the addon). The model owns its weights (one arena,
// model/param_layout.h) and its activations (sized once per batch shape and reused); gradients
// and optimizer state belong to a trainer (train/), so a model used for inference (reference
// log-probs, a reward model, eval) allocates none.
//
// Batches are [B, T] token ids in host memory with an attention mask (1 = token, 0 = padding), left
// or right padded. Position ids follow transformers: cumsum(mask) - 1 over each row, so the same
// sequence gives the same numbers under either padding. Token ids and masks are checked on the
// host before anything reaches the backend.
//
// Nothing here reads device memory on the host inside a forward or backward: results are
// downloaded once, at the end of a call, and the inference calls end with the backend's
// synchronize(), so a device backend's deferred errors (backend.h) are thrown by the call that
// caused them. Training calls leave that to the step boundary (preference_step, Trainer::step).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "core/cancel.h"
#include "core/tensor.h"
#include "model/llama_config.h"
#include "model/param_layout.h"
#include "model/precision.h"

namespace sppo {

struct TokenBatch {
  int64_t B = 0, T = 0;
  const int32_t* tokens = nullptr;          // [B, T]
  const uint8_t* attention_mask = nullptr;  // [B, T] 1 = real token
  // [B, T]: 1 where tokens[b, t] is a response token whose log-probability counts (predicted from
  // position t-1). Only used by sequence log-probabilities.
  const uint8_t* response_mask = nullptr;
};

// What a training forward computes at its head.
enum class TrainHead { LogProbs, Scores };

struct BackwardHooks {
  // Called, in increasing order, with the end (in elements) of the prefix of the gradient arena
  // whose gradients are final: after the head and final norm, after each layer, and at the end.
  std::function<void(int64_t)> grads_ready;
};

// Planned bytes of a call's working memory on this model (the whole run's plan, without a model:
// train/memory_plan.h).
struct MemoryPlan {
  std::size_t weights = 0, activations = 0, head = 0;
  std::size_t total() const { return weights + activations + head; }
};

class KVCache;
class DecodeBuckets;

// One sequence's new tokens for a decode call (host memory).
struct DecodeItem {
  int seq = 0;
  const int32_t* tokens = nullptr;
  int64_t count = 0;
};

class LlamaModel {
 public:
  LlamaModel(std::shared_ptr<Backend> backend, const LlamaConfig& config, Precision precision);
  ~LlamaModel();
  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;

  const LlamaConfig& config() const;
  Precision precision() const;
  Dtypes dtypes() const;
  Backend& backend() const;
  const std::shared_ptr<Backend>& backend_ptr() const;
  const ParamLayout& layout() const;
  Tensor weights() const;        // the whole arena: layout().total() elements of dtypes().weight
  Tensor param(int i) const;     // one parameter's view of it
  Tensor param(const std::string& name) const;  // throws when absent

  // Normal(0, std) init of every matrix, ones for norms; deterministic in seed (tests, demos).
  void init_random(uint64_t seed, double std = 0.02);
  void set_gradient_checkpointing(bool on);
  bool gradient_checkpointing() const;
  // The calls that follow check `c` between layers, chunks and decode steps (throw Cancelled);
  // bucketed decode steps (decode_bucketed: CUDA graphs) only between steps.
  void set_cancel(CancelPoint c);
  const CancelPoint& cancel_point() const;

  // Throws sppo::Error naming `what` and the offending field or index.
  void check_batch(const TokenBatch& b, const char* what, bool need_response) const;

  // ---- inference; outputs are host memory of F32 or F64 --------------------------------------------
  void logits(const TokenBatch& b, const Tensor& out);  // [B*T*V]
  void scores(const TokenBatch& b, const Tensor& out);  // [B*num_labels], at each row's last real token
  // [B] sums of response-token log-probabilities; token_out [B*T] (optional) per position.
  void sequence_logprobs(const TokenBatch& b, const Tensor& seq_out, const Tensor& token_out = Tensor());

  // ---- training --------------------------------------------------------------------------------
  // Forward keeping what backward needs; returns the head's output in backend memory: [B]
  // sequence log-probabilities (LogProbs, dtypes().stat) or [B*num_labels] scores (Scores,
  // dtypes().act). Valid until the next call on the model.
  Tensor forward_train(const TokenBatch& b, TrainHead head);
  // grad: d objective / d (forward_train's output), backend memory of the same shape and dtype.
  // Adds every parameter's gradient into `grads` (layout().total() elements of dtypes().grad, or of
  // BF16 for a bf16 model: gradient_dtype_allowed; the layout's offsets). Into BF16, each op adds
  // its fp32 result and rounds once. Needs forward_train just before.
  void backward_train(const Tensor& grad, const Tensor& grads, const BackwardHooks* hooks = nullptr);

  // ---- decoding with a paged KV cache (model/kv_cache.h) --------------------------------------------
  // Appends each item's tokens to its sequence (positions continue from its length) and writes
  // the logits of each item's last token to last_logits [items, V] (backend memory, act dtype).
  void decode(KVCache& cache, const std::vector<DecodeItem>& items, const Tensor& last_logits);
  // A decode-only step (every item one token) at the bucket of items.size() rows
  // (model/decode_buckets.h; `buckets` made for this cache): returns the logits [bucket, V] in the
  // buckets' buffer (valid until the next step), whose first items.size() rows are the items' and
  // bitwise decode()'s; the rest are padding. Runs through Backend::run_step (CUDA graphs); the
  // cancel point is not checked inside (callers check it per step).
  Tensor decode_bucketed(KVCache& cache, const std::vector<DecodeItem>& items, DecodeBuckets& buckets);

  // Frees the decode calls' workspace (the next decode allocates it again). A trainer does this when
  // it is made, so that training does not keep the rollout's decode step resident.
  void release_decode_workspace();

  // Working memory a call on `rows` batch rows would allocate.
  MemoryPlan memory_plan(int64_t rows, bool training) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sppo
