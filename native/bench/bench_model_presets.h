// bench_model's named shapes (the GPU issues' benchmark targets) and the two figures every row is
// judged by: the FLOPs and bytes a step cannot avoid, from which the floors come. Host-only
// arithmetic, so the presets and their memory plans (train/memory_plan.h) are checked on the CPU
// machine with --plan-only.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/llama_config.h"
#include "train/optimizer_config.h"

namespace sppo_bench {

struct ModelPreset {
  std::string name;
  sppo::LlamaConfig config;
  int64_t pairs = 4, seq = 128;  // train step and log-probs: pairs x 2 sides x seq tokens
  sppo::OptimizerKind optimizer = sppo::OptimizerKind::RMSprop;
  bool checkpointing = false;
  int64_t prompts = 64, prompt_len = 128, new_tokens = 256;  // the rollout (issue 9)
  std::vector<int64_t> decode_batches = {1, 64};
  int64_t decode_ctx = 512;    // positions already in the cache for the one-step decode
  std::string phases;          // default --only
  std::string about;
};

inline sppo::LlamaConfig llama_shape(int64_t V, int64_t H, int64_t I, int64_t L, int64_t nh, int64_t nkv,
                                     double theta) {
  sppo::LlamaConfig c;
  c.vocab_size = V;
  c.hidden_size = H;
  c.intermediate_size = I;
  c.num_layers = L;
  c.num_heads = nh;
  c.num_kv_heads = nkv;
  c.head_dim = H / nh;
  c.rope_theta = theta;
  c.rms_norm_eps = 1e-5;
  return c;
}

// llama-1b: TinyLlama-1.1B's shape (issue 8's train step at 8 pairs x 1024 with AdamW, issue 9's
// rollout); mistral-7b: issue 8's second row (RMSprop + checkpointing); llama-8b: Llama-3-8B's
// shape for issue 9's one decode step at batch 1 and 256.
inline ModelPreset model_preset(const std::string& name) {
  ModelPreset p;
  p.name = name;
  if (name == "llama-1b") {
    p.config = llama_shape(32000, 2048, 5632, 22, 32, 4, 10000);
    p.pairs = 8, p.seq = 1024, p.optimizer = sppo::OptimizerKind::AdamW, p.checkpointing = false;
    p.decode_batches = {1, 64};
    p.phases = "train,logprobs,rollout,decode";
    p.about = "TinyLlama-1.1B shape; AdamW; 8 pairs x 1024; rollout 64 x (128 + 256)";
  } else if (name == "mistral-7b") {
    p.config = llama_shape(32000, 4096, 14336, 32, 32, 8, 1000000);
    p.pairs = 8, p.seq = 1024, p.optimizer = sppo::OptimizerKind::RMSprop, p.checkpointing = true;
    p.phases = "train";
    p.about = "Mistral-7B shape; RMSprop + gradient checkpointing; 8 pairs x 1024 where it fits";
  } else if (name == "llama-8b") {
    p.config = llama_shape(128256, 4096, 14336, 32, 32, 8, 500000);
    p.decode_batches = {1, 256};
    p.phases = "decode";
    p.about = "Llama-3-8B shape; one decode step at batch 1 and 256";
  } else {
    sppo::fail("--preset must be llama-1b, mistral-7b or llama-8b (got '", name, "')");
  }
  return p;
}

// Parameters that take part in matrix products (every projection and the LM head; not the
// embedding lookup nor the norms).
inline double matmul_params(const sppo::LlamaConfig& c) {
  const double H = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size);
  const double q = static_cast<double>(c.num_heads * c.head_dim), kv = static_cast<double>(c.num_kv_heads * c.head_dim);
  const double per_layer = H * (q + 2 * kv) + q * H + 3 * H * I;
  return static_cast<double>(c.num_layers) * per_layer + static_cast<double>(c.vocab_size) * H;
}

// Model FLOPs of `tokens` tokens in rows of `seq` positions: 2 per matmul parameter per token
// forward (6 with backward), and causal attention's QK^T and PV, about 2 * seq * heads * head_dim
// per token per layer forward (x3 with backward). Checkpointing's recomputed forward is not
// counted: the floor is the work the step needs, not the work a memory choice adds.
inline double model_flops(const sppo::LlamaConfig& c, double tokens, double seq, bool backward) {
  const double attn = 2.0 * seq * static_cast<double>(c.num_heads * c.head_dim) * static_cast<double>(c.num_layers);
  const double fwd = 2.0 * matmul_params(c) + attn;
  return tokens * (backward ? 3.0 * fwd : fwd);
}

// Bytes of K and V one cached position holds over all layers (fp32 by default).
inline double kv_bytes_per_position(const sppo::LlamaConfig& c, double elem = 4) {
  return 2.0 * static_cast<double>(c.num_layers * c.num_kv_heads * c.head_dim) * elem;
}

// The bytes one decode step of `batch` rows must read: every matmul weight and norm once, the
// batch's embedding rows, and each row's cached K and V of `ctx` positions; plus the logits it
// writes. fp32 (the engine's parity mode).
inline double decode_step_bytes(const sppo::LlamaConfig& c, double batch, double ctx, double elem = 4) {
  const double H = static_cast<double>(c.hidden_size);
  const double weights = (matmul_params(c) + H * (2.0 * static_cast<double>(c.num_layers) + 1)) * elem;
  return weights + batch * H * elem + batch * ctx * kv_bytes_per_position(c, elem) +
         batch * static_cast<double>(c.vocab_size) * elem;
}

}  // namespace sppo_bench
