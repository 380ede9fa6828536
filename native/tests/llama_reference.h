// A plain float64 Llama forward written independently of the engine (loops over one unpadded
// sequence at a time, rope frequencies from the transformers formulas in double), used as the
// reference for the model tests.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/llama_config.h"

namespace llama_ref {

using Weights = std::map<std::string, std::vector<double>>;

inline std::vector<double> inv_freq(const sppo::LlamaConfig& c) {
  std::vector<double> inv;
  for (int64_t i = 0; i < c.head_dim; i += 2) inv.push_back(1.0 / std::pow(c.rope_theta, double(i) / c.head_dim));
  if (c.rope_type == sppo::RopeType::Linear)
    for (auto& f : inv) f /= c.rope_factor;
  if (c.rope_type == sppo::RopeType::Llama3) {
    const double lo_wl = c.rope_original_max_position / c.rope_low_freq_factor;
    const double hi_wl = c.rope_original_max_position / c.rope_high_freq_factor;
    for (auto& f : inv) {
      const double wl = 2 * 3.14159265358979323846 / f;
      if (wl < hi_wl) continue;                            // high frequency: unchanged
      if (wl > lo_wl) { f = f / c.rope_factor; continue; } // low frequency: divided
      const double smooth = (c.rope_original_max_position / wl - c.rope_low_freq_factor) /
                            (c.rope_high_freq_factor - c.rope_low_freq_factor);
      f = (1 - smooth) * f / c.rope_factor + smooth * f;
    }
  }
  return inv;
}

// y = W x for W [rows, cols].
inline std::vector<double> matvec(const std::vector<double>& W, const std::vector<double>& x, int64_t rows) {
  const int64_t cols = static_cast<int64_t>(x.size());
  std::vector<double> y(rows, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) y[r] += W[r * cols + j] * x[j];
  return y;
}

inline std::vector<double> rmsnorm(const std::vector<double>& x, const std::vector<double>& w, double eps) {
  double ms = 0;
  for (double v : x) ms += v * v;
  ms /= x.size();
  std::vector<double> y(x.size());
  for (size_t j = 0; j < x.size(); ++j) y[j] = w[j] * x[j] / std::sqrt(ms + eps);
  return y;
}

// Final-norm hidden states [n][H] of one unpadded sequence (positions 0..n-1).
inline std::vector<std::vector<double>> hidden(const sppo::LlamaConfig& c, const Weights& W,
                                               const std::vector<int32_t>& toks) {
  const int64_t n = static_cast<int64_t>(toks.size()), H = c.hidden_size, hd = c.head_dim;
  const int64_t nh = c.num_heads, nkv = c.num_kv_heads, half = hd / 2;
  const auto inv = inv_freq(c);
  std::vector<std::vector<double>> x(n, std::vector<double>(H));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < H; ++j) x[t][j] = W.at("model.embed_tokens.weight")[toks[t] * H + j];
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    std::vector<std::vector<double>> q(n), k(n), v(n);
    for (int64_t t = 0; t < n; ++t) {
      auto xn = rmsnorm(x[t], W.at(p + "input_layernorm.weight"), c.rms_norm_eps);
      q[t] = matvec(W.at(p + "self_attn.q_proj.weight"), xn, nh * hd);
      k[t] = matvec(W.at(p + "self_attn.k_proj.weight"), xn, nkv * hd);
      v[t] = matvec(W.at(p + "self_attn.v_proj.weight"), xn, nkv * hd);
      auto rot = [&](std::vector<double>& vec, int64_t heads) {
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t i = 0; i < half; ++i) {
            const double th = t * inv[i], a = vec[h * hd + i], b = vec[h * hd + i + half];
            vec[h * hd + i] = a * std::cos(th) - b * std::sin(th);
            vec[h * hd + i + half] = b * std::cos(th) + a * std::sin(th);
          }
      };
      rot(q[t], nh);
      rot(k[t], nkv);
    }
    for (int64_t t = 0; t < n; ++t) {
      std::vector<double> o(nh * hd, 0.0);
      for (int64_t h = 0; h < nh; ++h) {
        const int64_t g = h / (nh / nkv);
        std::vector<double> s(t + 1);
        double mx = -1e300;
        for (int64_t j = 0; j <= t; ++j) {
          s[j] = 0;
          for (int64_t i = 0; i < hd; ++i) s[j] += q[t][h * hd + i] * k[j][g * hd + i];
          s[j] /= std::sqrt(double(hd));
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (auto& e : s) z += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= t; ++j)
          for (int64_t i = 0; i < hd; ++i) o[h * hd + i] += s[j] / z * v[j][g * hd + i];
      }
      auto a = matvec(W.at(p + "self_attn.o_proj.weight"), o, H);
      for (int64_t j = 0; j < H; ++j) x[t][j] += a[j];
      auto xn = rmsnorm(x[t], W.at(p + "post_attention_layernorm.weight"), c.rms_norm_eps);
      auto gt = matvec(W.at(p + "mlp.gate_proj.weight"), xn, c.intermediate_size);
      auto up = matvec(W.at(p + "mlp.up_proj.weight"), xn, c.intermediate_size);
      for (int64_t j = 0; j < c.intermediate_size; ++j) gt[j] = gt[j] / (1 + std::exp(-gt[j])) * up[j];
      auto d = matvec(W.at(p + "mlp.down_proj.weight"), gt, H);
      for (int64_t j = 0; j < H; ++j) x[t][j] += d[j];
    }
  }
  for (int64_t t = 0; t < n; ++t) x[t] = rmsnorm(x[t], W.at("model.norm.weight"), c.rms_norm_eps);
  return x;
}

// Logits [n][V] of one unpadded sequence.
inline std::vector<std::vector<double>> logits(const sppo::LlamaConfig& c, const Weights& W,
                                               const std::vector<int32_t>& toks) {
  auto h = hidden(c, W, toks);
  const auto& head = c.tie_word_embeddings ? W.at("model.embed_tokens.weight") : W.at("lm_head.weight");
  std::vector<std::vector<double>> out;
  for (auto& r : h) out.push_back(matvec(head, r, c.vocab_size));
  return out;
}

// Reward-model scores [num_labels] at the last token of one unpadded sequence.
inline std::vector<double> score(const sppo::LlamaConfig& c, const Weights& W, const std::vector<int32_t>& toks) {
  auto h = hidden(c, W, toks);
  return matvec(W.at("score.weight"), h.back(), c.num_labels);
}

}  // namespace llama_ref
