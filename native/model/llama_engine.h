// The Llama-family decoder on the CPU, templated on the scalar: float is the model behind
// LlamaModel; double runs the same code for finite-difference gradient checks in the tests.
// Hand-written forward and backward (no autograd), optional per-layer recomputation
// (gradient checkpointing), and incremental decoding with a KV cache.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/llama.h"

namespace sppo {

template <typename T>
struct EngineParam {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<T> data, grad;
};

// Per-sequence key/value cache for generation: k[layer][seq] holds len[seq] rows of nkv*hd,
// grown on demand up to cap[seq] rows, so memory follows what is actually generated.
template <typename T>
struct KVCache {
  std::vector<int64_t> cap, len;
  std::vector<std::vector<std::vector<T>>> k, v;  // [layer][seq]
  // Frees a finished sequence's rows (it can take no more tokens afterwards).
  void release(int64_t seq) {
    for (auto& layer : k) std::vector<T>().swap(layer[seq]);
    for (auto& layer : v) std::vector<T>().swap(layer[seq]);
    cap[seq] = len[seq];
  }
};

// One sequence's new tokens for a decode call.
struct DecodeItem {
  int64_t seq = 0;
  const int32_t* tokens = nullptr;
  int64_t count = 0;
};

template <typename T>
class LlamaEngine {
 public:
  explicit LlamaEngine(const LlamaConfig& cfg);
  ~LlamaEngine();
  LlamaEngine(const LlamaEngine&) = delete;
  LlamaEngine& operator=(const LlamaEngine&) = delete;

  const LlamaConfig& config() const { return cfg_; }
  std::vector<EngineParam<T>>& params() { return params_; }
  EngineParam<T>* find(const std::string& name);
  void init_random(uint64_t seed, double std);
  void zero_grad();
  void set_checkpointing(bool on) { checkpointing_ = on; }

  // Throws sppo::Error naming `what` and the offending field/index.
  void check_batch(const TokenBatch& b, const char* what, bool need_response) const;

  // Decoder forward; hidden() is [B*T, H] after the final norm. keep: store what backward needs.
  void forward(const TokenBatch& batch, bool keep);
  const T* hidden() const { return hidden_.data(); }
  // Accumulates parameter gradients given d(hidden); needs forward(batch, true) just before.
  void backward(const T* d_hidden);

  void logits(const TokenBatch& batch, T* out);
  void scores(const TokenBatch& batch, T* out);
  // Adds d(sum_b sum_l d_scores[b,l] * scores[b,l]) / d params (sequence classification).
  void scores_backward(const TokenBatch& batch, const T* d_scores);
  void sequence_logprobs(const TokenBatch& batch, T* seq_logp, T* token_logp);
  // Forward with activations kept, seq_logp [B] out, then loss(seq_logp, grad_seq) fills the
  // gradient of the objective with respect to each sequence log-probability, and backward adds
  // the parameter gradients.
  void sequence_logprobs_train(const TokenBatch& batch, T* seq_logp,
                               const std::function<void(const T* seq_logp, T* grad_seq)>& loss);

  void cache_init(KVCache<T>& cache, const std::vector<int64_t>& capacities) const;
  // Appends each item's tokens to its sequence's cache (positions continue from len) and writes
  // the logits of each item's last token to last_logits [items, V].
  void decode(KVCache<T>& cache, const std::vector<DecodeItem>& items, T* last_logits);

 private:
  struct LayerIdx {
    int ln1, q, k, v, o, ln2, gate, up, down;
  };
  struct Acts;
  struct Rows;

  const T* W(int i) const { return params_[i].data.data(); }
  T* G(int i) { return params_[i].grad.data(); }
  const T* head_w() const;
  T* head_g();
  void prepare_batch(const TokenBatch& b);
  void layer_forward(int l, const T* x, Acts& a, T* x_out);
  void layer_backward(int l, const Acts& a, T* dx);
  void head_logprob(const Rows& rows, T* tok_lp, T* d_hidden, const T* grad_seq, bool keep = false);
  Rows response_rows(const TokenBatch& b) const;

  LlamaConfig cfg_;
  std::vector<EngineParam<T>> params_;
  std::vector<LayerIdx> layers_;
  int emb_ = -1, norm_ = -1, lm_head_ = -1, score_ = -1;
  std::vector<float> inv_freq_;
  bool checkpointing_ = false;

  // State of the last forward.
  int64_t B_ = 0, T_ = 0, N_ = 0;
  bool kept_ = false;
  std::vector<int32_t> tok_;
  std::vector<uint8_t> mask_;
  std::vector<int64_t> pos_;
  std::vector<T> cos_, sin_;
  std::vector<Acts*> acts_;           // per layer (full activations, or only x with checkpointing)
  Acts* scratch_ = nullptr;
  std::vector<T> xL_, rstdF_, hidden_;
  // Head logits and log-sum-exp of the last training forward when they fit in one chunk, so
  // the backward pass need not recompute them.
  std::vector<T> head_logits_, head_lse_;
  bool head_cached_ = false;
};

extern template class LlamaEngine<float>;
extern template class LlamaEngine<double>;

}  // namespace sppo
