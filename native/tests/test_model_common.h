// Shared helpers of the model test suites: tiny configs, the Engine wrapper (a LlamaModel on the
// CPU backend in fp32 or fp64 with its own gradient buffer, and host views of every parameter and
// gradient), random weights, padded batches.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "backend/backend.h"
#include "backend/buffer.h"
#include "backend/workspace.h"
#include "llama_reference.h"
#include "model/generate.h"
#include "model/llama_model.h"
#include "testing.h"
#include "train/preference_step.h"

namespace model_test {

// A host view of n elements (the CPU backend's memory is host memory).
template <typename T>
struct Span {
  T* p = nullptr;
  size_t n = 0;
  size_t size() const { return n; }
  T& operator[](size_t i) const { return p[i]; }
  T* begin() const { return p; }
  T* end() const { return p + n; }
};

template <typename T>
struct ParamView {
  std::string name;
  std::vector<int64_t> shape;
  Span<T> data, grad;
  int64_t numel() const { return static_cast<int64_t>(data.n); }
};

// LlamaModel<fp32 | fp64> on the CPU backend, with a gradient buffer of the model's layout, and the
// calls the tests make in host memory.
template <typename T>
class Engine {
 public:
  static constexpr sppo::Precision kPrecision = std::is_same_v<T, double> ? sppo::Precision::FP64 : sppo::Precision::FP32;
  static constexpr sppo::DType kDtype = std::is_same_v<T, double> ? sppo::DType::F64 : sppo::DType::F32;

  explicit Engine(const sppo::LlamaConfig& c)
      : model_(sppo::backend_for(sppo::Device::CPU), c, kPrecision),
        grads_(model_.backend_ptr(), static_cast<size_t>(model_.layout().total()) * sizeof(T)),
        ws_(model_.backend_ptr(), "test loss") {
    zero_grad();
    for (int i = 0; i < static_cast<int>(model_.layout().params().size()); ++i) {
      const sppo::ParamSpec& p = model_.layout()[i];
      ParamView<T> v;
      v.name = p.name;
      v.shape = p.shape;
      v.data = Span<T>{model_.param(i).template as<T>(), static_cast<size_t>(p.numel)};
      v.grad = Span<T>{grads().template as<T>() + p.offset, static_cast<size_t>(p.numel)};
      views_.push_back(v);
    }
  }

  sppo::LlamaModel& model() { return model_; }
  const sppo::LlamaConfig& config() const { return model_.config(); }
  std::vector<ParamView<T>>& params() { return views_; }
  ParamView<T>* find(const std::string& name) {
    for (auto& v : views_)
      if (v.name == name) return &v;
    return nullptr;
  }
  sppo::Tensor grads() const { return grads_.view(kDtype, model_.layout().total()); }
  void zero_grad() { std::fill(grads().template as<T>(), grads().template as<T>() + model_.layout().total(), T(0)); }
  void init_random(uint64_t seed, double std) { model_.init_random(seed, std); }
  void set_checkpointing(bool on) { model_.set_gradient_checkpointing(on); }
  void set_gradient_checkpointing(bool on) { model_.set_gradient_checkpointing(on); }
  void check_batch(const sppo::TokenBatch& b, const char* what, bool r) const { model_.check_batch(b, what, r); }

  void logits(const sppo::TokenBatch& b, T* out) {
    model_.logits(b, sppo::Tensor(out, kDtype, b.B * b.T * config().vocab_size));
  }
  void scores(const sppo::TokenBatch& b, T* out) {
    model_.scores(b, sppo::Tensor(out, kDtype, b.B * config().num_labels));
  }
  void sequence_logprobs(const sppo::TokenBatch& b, T* seq, T* tok = nullptr) {
    model_.sequence_logprobs(b, sppo::Tensor(seq, kDtype, b.B), tok ? sppo::Tensor(tok, kDtype, b.B * b.T) : sppo::Tensor());
  }
  // Forward with activations kept; loss(seq_logp, grad_seq) fills the gradient of the objective
  // with respect to each sequence log-probability; backward adds the parameter gradients.
  void sequence_logprobs_train(const sppo::TokenBatch& b, T* seq_out, const std::function<void(const T*, T*)>& loss) {
    const sppo::Tensor seq = model_.forward_train(b, sppo::TrainHead::LogProbs);
    std::vector<T> s(seq.template as<T>(), seq.template as<T>() + b.B), g(static_cast<size_t>(b.B), T(0));
    if (seq_out) std::copy(s.begin(), s.end(), seq_out);
    loss(s.data(), g.data());
    model_.backward_train(sppo::Tensor(g.data(), kDtype, b.B), grads());
  }
  void sequence_logprobs_backward(const sppo::TokenBatch& b, const T* grad_seq, T scale = T(1)) {
    sequence_logprobs_train(b, nullptr, [&](const T*, T* g) {
      for (int64_t i = 0; i < b.B; ++i) g[i] = grad_seq[i] * scale;
    });
  }
  // Adds d(sum_b sum_l d_scores[b,l] * scores[b,l]) / d params (sequence classification).
  void scores_backward(const sppo::TokenBatch& b, const T* d_scores) {
    model_.forward_train(b, sppo::TrainHead::Scores);
    std::vector<T> d(d_scores, d_scores + b.B * config().num_labels);
    model_.backward_train(sppo::Tensor(d.data(), kDtype, static_cast<int64_t>(d.size())), grads());
  }
  sppo::StepMetrics loss_and_backward(const sppo::PairBatch& p, sppo::LossType type, double beta, double scale) {
    return sppo::preference_step(model_, p, type, beta, scale, grads(), nullptr, ws_);
  }
  std::vector<sppo::Generation> generate(const std::vector<std::vector<int32_t>>& prompts,
                                         const std::vector<uint64_t>& seeds, const sppo::GenerateOptions& o,
                                         int64_t samples = 1) {
    return sppo::generate(model_, prompts, samples, seeds, o);
  }

 private:
  sppo::LlamaModel model_;
  sppo::Buffer grads_;
  sppo::Workspace ws_;
  std::vector<ParamView<T>> views_;
};


// Llama-3 style: GQA (4 heads over 2 kv heads), head_dim 8 != hidden/heads, llama3 rope with all
// three frequency bands in play (wavelengths 6, 63, 628, 6283 vs 256..1024), tied embeddings.
inline sppo::LlamaConfig llama3_tiny() {
  sppo::LlamaConfig c;
  c.vocab_size = 53;
  c.hidden_size = 24;
  c.intermediate_size = 40;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.rope_type = sppo::RopeType::Llama3;
  c.rope_factor = 8.0;
  c.rope_low_freq_factor = 1.0;
  c.rope_high_freq_factor = 4.0;
  c.rope_original_max_position = 1024;
  c.tie_word_embeddings = true;
  return c;
}

// Llama-2 style: multi-head attention, default rope, separate lm_head.
inline sppo::LlamaConfig llama2_tiny() {
  sppo::LlamaConfig c;
  c.vocab_size = 41;
  c.hidden_size = 16;
  c.intermediate_size = 28;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  return c;
}

// Multi-query attention with linear rope scaling and an untied head.
inline sppo::LlamaConfig linear_tiny() {
  sppo::LlamaConfig c = llama2_tiny();
  c.num_heads = 4;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  c.rope_type = sppo::RopeType::Linear;
  c.rope_factor = 2.0;
  c.rope_theta = 500.0;
  return c;
}

// LlamaForSequenceClassification with two labels over the llama3 body (untied).
inline sppo::LlamaConfig reward_tiny() {
  sppo::LlamaConfig c = llama3_tiny();
  c.tie_word_embeddings = false;
  c.sequence_classification = true;
  c.num_labels = 2;
  return c;
}

// Big enough that matmul tiles and attention tasks run in parallel (OpenMP paths).
inline sppo::LlamaConfig medium() {
  sppo::LlamaConfig c = llama3_tiny();
  c.vocab_size = 300;
  c.hidden_size = 64;
  c.intermediate_size = 160;
  c.num_heads = 8;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  return c;
}

// Fresh random weights: matrices N(0, 0.3^2) (large enough for non-uniform attention and
// logits), norm weights 1 + N(0, 0.1^2).
template <typename P>
void randomize(std::vector<P>& params, sppo_test::Rng& rng, double std = 0.3) {
  for (auto& p : params) {
    const bool norm = p.shape.size() == 1;
    for (auto& v : p.data) v = static_cast<decltype(v + 0)>(norm ? 1.0 + rng.normal(0, 0.1) : rng.normal(0, std));
  }
}

template <typename P>
llama_ref::Weights weights_of(const std::vector<P>& params) {
  llama_ref::Weights w;
  for (auto& p : params) w[p.name] = std::vector<double>(p.data.begin(), p.data.end());
  return w;
}

// Copies weights between engines with the same config (rounding to the destination's type).
template <typename A, typename B>
void copy_weights(Engine<A>& from, Engine<B>& to) {
  for (size_t i = 0; i < from.params().size(); ++i) {
    auto& s = from.params()[i].data;
    auto& d = to.params()[i].data;
    for (size_t j = 0; j < s.size(); ++j) d[j] = static_cast<B>(s[j]);
  }
}

// Fresh random weights for `m` (float64 draws rounded to float, as a float model holds them);
// returns the float64 weights (of the rounded values) for the reference.
inline llama_ref::Weights randomize_model(const sppo::LlamaConfig& c, Engine<float>& m, sppo_test::Rng& rng) {
  Engine<double> de(c);
  randomize(de.params(), rng);
  copy_weights(de, m);
  copy_weights(m, de);
  return weights_of(de.params());
}

// A padded batch over sequences; response tokens are the last resp_len[i] tokens of each.
struct Batch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> tok;
  std::vector<uint8_t> mask, resp;
  std::vector<int64_t> start;  // column of each row's first real token
  sppo::TokenBatch view() const { return sppo::TokenBatch{B, T, tok.data(), mask.data(), resp.data()}; }
};

inline Batch pad(const std::vector<std::vector<int32_t>>& seqs, const std::vector<int64_t>& resp_len, bool left,
                 int64_t extra = 0, int32_t pad_id = 0) {
  Batch b;
  b.B = static_cast<int64_t>(seqs.size());
  for (auto& s : seqs) b.T = std::max<int64_t>(b.T, static_cast<int64_t>(s.size()));
  b.T += extra;
  b.tok.assign(b.B * b.T, pad_id);
  b.mask.assign(b.B * b.T, 0);
  b.resp.assign(b.B * b.T, 0);
  for (int64_t i = 0; i < b.B; ++i) {
    const int64_t n = static_cast<int64_t>(seqs[i].size());
    const int64_t s0 = left ? b.T - n : 0;
    b.start.push_back(s0);
    for (int64_t t = 0; t < n; ++t) {
      b.tok[i * b.T + s0 + t] = seqs[i][t];
      b.mask[i * b.T + s0 + t] = 1;
      b.resp[i * b.T + s0 + t] = t >= n - resp_len[i] ? 1 : 0;
    }
  }
  return b;
}

inline std::vector<int32_t> random_tokens(sppo_test::Rng& rng, int64_t n, int64_t V) {
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng.integer(0, V - 1));
  return t;
}

}  // namespace model_test
