// A float64 PairRM written from the definitions (DeBERTa-v2 encoder + the PairRM head, issue 11),
// one sequence at a time with plain loops, sharing no code with native/model/: the bucket formula,
// the attention with both relative terms, the post-norms and the head are spelled out here.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "model/pairrm_config.h"

namespace sppo_test {

// The tiny random PairRM shape of the model suites (CPU and CUDA): every bucket kind in a short input.
inline sppo::PairRmConfig pairrm_tiny() {
  sppo::PairRmConfig c;
  c.vocab_size = 40;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_layers = 2;
  c.num_heads = 4;
  c.head_dim = 4;
  c.layer_norm_eps = 1e-7;
  c.position_buckets = 8;         // exact offsets up to 4, log buckets up to 19, then the last row
  c.max_relative_positions = 20;  // 16 relative rows
  return c;
}

using Mat = std::vector<double>;  // row-major
using Weights = std::map<std::string, Mat>;

struct RefResult {
  Mat hidden;    // [L, H]
  double logit;  // mean over tasks of h([e_s; e_1]) - h([e_s; e_2])
};

inline int64_t ref_bucket(int64_t r, int64_t buckets, int64_t max_position) {
  const int64_t mid = buckets / 2, a = std::llabs(r);
  if (buckets <= 0 || a <= mid) return r;
  const int64_t p = mid + static_cast<int64_t>(std::ceil(std::log(double(a) / mid) / std::log(double(max_position - 1) / mid) * (mid - 1)));
  return r < 0 ? -p : p;
}

inline int64_t ref_span(const sppo::PairRmConfig& c) {
  return c.position_buckets > 0 ? c.position_buckets : c.max_relative_positions;
}

// Relative-embedding row of offset r = i - j.
inline int64_t ref_row(const sppo::PairRmConfig& c, int64_t r) {
  const int64_t span = ref_span(c);
  return std::min(std::max(ref_bucket(r, c.position_buckets, c.max_relative_positions) + span, int64_t(0)), 2 * span - 1);
}

// y [n, out] = x [n, in] W^T + b, W [out, in].
inline Mat ref_linear(const Mat& x, int64_t n, int64_t in, const Mat& W, const Mat& b, int64_t out) {
  Mat y(n * out);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = b[o];
      for (int64_t i = 0; i < in; ++i) s += x[r * in + i] * W[o * in + i];
      y[r * out + o] = s;
    }
  return y;
}

inline void ref_layernorm(Mat& x, int64_t n, int64_t H, const Mat& w, const Mat& b, double eps) {
  for (int64_t r = 0; r < n; ++r) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < H; ++j) mean += x[r * H + j] / H;
    for (int64_t j = 0; j < H; ++j) var += (x[r * H + j] - mean) * (x[r * H + j] - mean) / H;
    for (int64_t j = 0; j < H; ++j) x[r * H + j] = (x[r * H + j] - mean) / std::sqrt(var + eps) * w[j] + b[j];
  }
}

inline RefResult ref_pairrm(const sppo::PairRmConfig& c, const Weights& W, const std::vector<int32_t>& ids,
                            const int32_t slots[3]) {
  const int64_t L = static_cast<int64_t>(ids.size()), H = c.hidden_size, I = c.intermediate_size;
  const int64_t nh = c.num_heads, hd = c.head_dim, span = ref_span(c);
  const std::string m = "pretrained_model.";
  auto w = [&](const std::string& name) -> const Mat& { return W.at(name); };
  Mat x(L * H);
  for (int64_t t = 0; t < L; ++t)
    for (int64_t j = 0; j < H; ++j) x[t * H + j] = w(m + "embeddings.word_embeddings.weight")[ids[t] * H + j];
  ref_layernorm(x, L, H, w(m + "embeddings.LayerNorm.weight"), w(m + "embeddings.LayerNorm.bias"), c.layer_norm_eps);
  Mat rel = w(m + "encoder.rel_embeddings.weight");
  if (c.norm_rel_embeddings)
    ref_layernorm(rel, 2 * span, H, w(m + "encoder.LayerNorm.weight"), w(m + "encoder.LayerNorm.bias"), c.layer_norm_eps);
  const double scale = 1.0 / std::sqrt(double(hd) * (1 + int(c.c2p) + int(c.p2c)));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = m + "encoder.layer." + std::to_string(l) + ".";
    auto lin = [&](const Mat& in, int64_t n, int64_t din, const std::string& name, int64_t dout) {
      return ref_linear(in, n, din, w(p + name + ".weight"), w(p + name + ".bias"), dout);
    };
    const Mat q = lin(x, L, H, "attention.self.query_proj", H), k = lin(x, L, H, "attention.self.key_proj", H),
              v = lin(x, L, H, "attention.self.value_proj", H);
    const Mat pq = lin(rel, 2 * span, H, "attention.self.query_proj", H),
              pk = lin(rel, 2 * span, H, "attention.self.key_proj", H);
    Mat ctx(L * H, 0.0);
    for (int64_t h = 0; h < nh; ++h)
      for (int64_t i = 0; i < L; ++i) {
        auto dot = [&](const Mat& a, int64_t ra, const Mat& b, int64_t rb) {
          double s = 0;
          for (int64_t e = 0; e < hd; ++e) s += a[ra * H + h * hd + e] * b[rb * H + h * hd + e];
          return s;
        };
        std::vector<double> s(L);
        double mx = -INFINITY;
        for (int64_t j = 0; j < L; ++j) {
          const int64_t d = ref_row(c, i - j);
          s[j] = dot(q, i, k, j);
          if (c.c2p) s[j] += dot(q, i, pk, d);  // content to position
          if (c.p2c) s[j] += dot(k, j, pq, d);  // position to content
          s[j] *= scale;
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (auto& e : s) z += (e = std::exp(e - mx));
        for (int64_t j = 0; j < L; ++j)
          for (int64_t e = 0; e < hd; ++e) ctx[i * H + h * hd + e] += s[j] / z * v[j * H + h * hd + e];
      }
    Mat x1 = lin(ctx, L, H, "attention.output.dense", H);
    for (int64_t i = 0; i < L * H; ++i) x1[i] += x[i];
    ref_layernorm(x1, L, H, w(p + "attention.output.LayerNorm.weight"), w(p + "attention.output.LayerNorm.bias"), c.layer_norm_eps);
    Mat f = lin(x1, L, H, "intermediate.dense", I);
    for (auto& e : f) e = 0.5 * e * (1 + std::erf(e / std::sqrt(2.0)));
    Mat out = lin(f, L, I, "output.dense", H);
    for (int64_t i = 0; i < L * H; ++i) out[i] += x1[i];
    ref_layernorm(out, L, H, w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias"), c.layer_norm_eps);
    x = out;
  }
  auto head = [&](int64_t a, int64_t b) {
    Mat z(2 * H);
    for (int64_t j = 0; j < H; ++j) z[j] = x[a * H + j], z[H + j] = x[b * H + j];
    Mat h = ref_linear(z, 1, 2 * H, w("head_layer.1.weight"), w("head_layer.1.bias"), H);
    for (auto& e : h) e = std::tanh(e);
    return ref_linear(h, 1, H, w("head_layer.4.weight"), w("head_layer.4.bias"), c.num_tasks);
  };
  const Mat left = head(slots[0], slots[1]), right = head(slots[0], slots[2]);
  double logit = 0;
  for (int64_t t = 0; t < c.num_tasks; ++t) logit += (left[t] - right[t]) / c.num_tasks;
  return {x, logit};
}

}  // namespace sppo_test
