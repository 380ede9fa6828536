// A Llama-family causal LM on the CPU backend (CONTRACT between the model math and the
// bindings; implemented in native/model/*.cpp). fp32 parameters, gradients and math.
//
// Parameters use the Hugging Face names:
//   model.embed_tokens.weight [V, H]
//   model.layers.{i}.input_layernorm.weight [H]
//   model.layers.{i}.self_attn.{q,k,v,o}_proj.weight   q [nh*hd, H], k/v [nkv*hd, H], o [H, nh*hd]
//   model.layers.{i}.post_attention_layernorm.weight [H]
//   model.layers.{i}.mlp.{gate,up}_proj.weight [I, H], mlp.down_proj.weight [H, I]
//   model.norm.weight [H]
//   lm_head.weight [V, H]           (absent when tie_word_embeddings)
//   score.weight [num_labels, H]    (sequence classification instead of lm_head)
//
// Batches are [B, T] token ids with an attention mask (1 = token, 0 = padding), left or right
// padded. Position ids follow transformers: cumsum(mask) - 1 over each row (pads get 0), so the
// same sequence gives the same numbers under either padding.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/sppo_loss.h"
#include "model/llama_config.h"

namespace sppo {

struct ParamRef {
  std::string name;
  std::vector<int64_t> shape;
  float* data = nullptr;
  float* grad = nullptr;  // same size as data
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

struct TokenBatch {
  int64_t B = 0, T = 0;
  const int32_t* tokens = nullptr;         // [B, T]
  const uint8_t* attention_mask = nullptr; // [B, T] 1 = real token
  // [B, T]: 1 where tokens[b, t] is a response token whose log-probability counts (predicted
  // from position t-1). Only used by sequence log-probabilities.
  const uint8_t* response_mask = nullptr;
};

struct PairBatch {
  TokenBatch chosen;    // B pairs
  TokenBatch rejected;  // same B
  const float* ref_chosen = nullptr;        // [B] log pi_ref, computed once per iteration
  const float* ref_rejected = nullptr;
  const float* chosen_probs = nullptr;      // [B]
  const float* chosen_probs_win = nullptr;  // [B]
  const float* chosen_probs_lose = nullptr; // [B]
};

struct StepMetrics {
  LossSummary summary;
  double policy_chosen_logp = 0;    // means over the batch
  double policy_rejected_logp = 0;
  int64_t tokens = 0;               // real tokens processed (both sides)
};

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  double temperature = 1.0;  // 0 or greedy => argmax
  double top_p = 1.0;
  int64_t top_k = 0;         // 0 = off
  bool greedy = false;
  std::vector<int32_t> eos_ids;
};

struct Generation {
  std::vector<int32_t> tokens;   // generated tokens only (includes the EOS that stopped it)
  std::vector<float> logprobs;   // sampling log-probability of each generated token under the
                                 // temperature/top-p/top-k distribution actually sampled from
  bool stopped_at_eos = false;   // false: hit max_new_tokens
};

class LlamaModel {
 public:
  explicit LlamaModel(const LlamaConfig& config);
  ~LlamaModel();
  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;

  const LlamaConfig& config() const;
  // Every parameter, in a fixed order; data is zero until loaded or initialised.
  std::vector<ParamRef>& params();
  ParamRef* find_param(const std::string& name);  // nullptr if absent

  // Normal(0, std) init of every matrix, ones for norms; deterministic in seed. For tests and demos.
  void init_random(uint64_t seed, double std = 0.02);

  void set_gradient_checkpointing(bool on);
  void zero_grad();

  // logits [B, T, V] (causal LM only).
  void logits(const TokenBatch& batch, float* out);
  // Reward-model scores [B, num_labels] at each row's last real token (sequence classification).
  void scores(const TokenBatch& batch, float* out);
  // Per-sequence sums of response-token log-probabilities [B]; token_logp [B, T] optional.
  void sequence_logprobs(const TokenBatch& batch, float* seq_logp, float* token_logp = nullptr);
  // Adds d(scale * sum_b grad_seq[b] * seq_logp[b]) / d params to the gradients.
  void sequence_logprobs_backward(const TokenBatch& batch, const float* grad_seq, float scale = 1.0f);
  // One micro-batch of the preference loss: forward both sides, the loss, backward with the
  // gradients multiplied by `scale` (1 / accumulation steps). Gradients accumulate.
  StepMetrics loss_and_backward(const PairBatch& pairs, LossType type, double beta, float scale);

  // Batched sampling with a KV cache. prompts[i] are token ids (no padding); seeds[i] seeds
  // sequence i alone, so its sample does not depend on the rest of the batch.
  std::vector<Generation> generate(const std::vector<std::vector<int32_t>>& prompts,
                                   const std::vector<uint64_t>& seeds, const GenerateOptions& opts);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sppo
