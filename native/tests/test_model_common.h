// Shared helpers of the model test suites: tiny configs, random weights, padded batches.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "llama_reference.h"
#include "model/llama.h"
#include "model/llama_engine.h"
#include "testing.h"

namespace model_test {

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

// Copies double engine weights into a float engine with the same config.
inline void copy_weights(sppo::LlamaEngine<double>& from, sppo::LlamaEngine<float>& to) {
  for (size_t i = 0; i < from.params().size(); ++i) {
    auto& s = from.params()[i].data;
    auto& d = to.params()[i].data;
    for (size_t j = 0; j < s.size(); ++j) d[j] = static_cast<float>(s[j]);
  }
}

inline void copy_weights(sppo::LlamaEngine<float>& from, sppo::LlamaModel& to) {
  for (size_t i = 0; i < from.params().size(); ++i) {
    auto& s = from.params()[i].data;
    std::copy(s.begin(), s.end(), to.params()[i].data);
  }
}

// Fresh random weights for `m` (float64 draws rounded to float, as a float model holds them);
// returns the float64 weights for the reference.
inline llama_ref::Weights randomize_model(const sppo::LlamaConfig& c, sppo::LlamaModel& m, sppo_test::Rng& rng) {
  sppo::LlamaEngine<double> de(c);
  randomize(de.params(), rng);
  sppo::LlamaEngine<float> fe(c);
  copy_weights(de, fe);
  copy_weights(fe, m);
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
