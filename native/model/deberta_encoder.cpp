// The DeBERTa-v2 encoder forward of PairRmModel over a packed batch (model/pairrm_model.h):
//   x = LayerNorm(word_embeddings[ids])                          (no positions, no token types)
//   rel = LayerNorm_enc(rel_embeddings[used rows])               (norm_rel_embeddings)
//   per layer:  q, k, v = x W^T + b;  pos_q = rel Wq^T + bq, pos_k = rel Wk^T + bk (shared keys)
//               a = disentangled_attention(q, k, v, pos_q, pos_k)
//               x1 = LayerNorm(x + a Wo^T + bo)
//               x  = LayerNorm(x1 + gelu(x1 Wi^T + bi) Wout^T + bout)
// The residual is the output's initial value and the projection accumulates into it.
#include <cmath>
#include <utility>

#include "model/pairrm_impl.h"

namespace sppo {

void PairRmModel::Impl::encode() {
  plan_activations();
  const int64_t H = cfg.hidden_size;
  Backend& b = *be;
  b.embedding_forward(W(layout.word_embeddings), cfg.vocab_size, H, ids, N, xa);
  b.layernorm_forward(xa, W(layout.embedding_norm.w), W(layout.embedding_norm.b), N, H, cfg.layer_norm_eps, xa);
  if (cfg.c2p || cfg.p2c) {
    const std::size_t row = static_cast<std::size_t>(H) * dtype_size(dt.act);
    b.copy(rel.data, static_cast<const char*>(W(layout.rel_embeddings).data) + static_cast<std::size_t>(rel_lo) * row,
           static_cast<std::size_t>(rel_rows) * row);
    if (cfg.norm_rel_embeddings)
      b.layernorm_forward(rel, W(layout.rel_norm.w), W(layout.rel_norm.b), rel_rows, H, cfg.layer_norm_eps, rel);
  }
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    cancel.check();
    layer_forward(l);
    std::swap(xa, xb);
  }
}

void PairRmModel::Impl::layer_forward(int64_t l) {
  const PairRmLayout::Layer& L = layout.layer(l);
  const int64_t n = N, H = cfg.hidden_size, I = cfg.intermediate_size;
  const double eps = cfg.layer_norm_eps;
  Backend& b = *be;
  auto linear = [&](const Tensor& x, int64_t rows, const PairRmLayout::Linear& p, int64_t out_dim, int64_t in_dim,
                    const Tensor& y, Activation act) {
    b.matmul(x, W(p.w), y, rows, out_dim, in_dim, false, true, false);
    b.bias_act(y, W(p.b), rows, out_dim, act, y);
  };
  linear(xa, n, L.q, H, H, q, Activation::Identity);
  linear(xa, n, L.k, H, H, k, Activation::Identity);
  linear(xa, n, L.v, H, H, v, Activation::Identity);
  if (cfg.p2c) linear(rel, rel_rows, L.q, H, H, pos_q, Activation::Identity);
  if (cfg.c2p) linear(rel, rel_rows, L.k, H, H, pos_k, Activation::Identity);
  RelAttnShape s;
  s.S = S;
  s.N = n;
  s.nh = cfg.num_heads;
  s.hd = cfg.head_dim;
  s.P = rel_rows;
  s.max_len = max_len;
  s.c2p = cfg.c2p;
  s.p2c = cfg.p2c;
  s.scale = 1.0 / std::sqrt(static_cast<double>(cfg.head_dim) * (1 + int(cfg.c2p) + int(cfg.p2c)));
  b.disentangled_attention(s, q, k, v, pos_q, pos_k, rel_index, start, att);
  const std::size_t bytes = static_cast<std::size_t>(n * H) * dtype_size(dt.act);
  b.copy(x1.data, xa.data, bytes);
  b.matmul(att, W(L.attn_out.w), x1, n, H, H, false, true, true);
  b.bias_act(x1, W(L.attn_out.b), n, H, Activation::Identity, x1);
  b.layernorm_forward(x1, W(L.attn_norm.w), W(L.attn_norm.b), n, H, eps, x1);
  linear(x1, n, L.inter, I, H, ffn, Activation::Gelu);
  b.copy(xb.data, x1.data, bytes);
  b.matmul(ffn, W(L.out.w), xb, n, H, I, false, true, true);
  b.bias_act(xb, W(L.out.b), n, H, Activation::Identity, xb);
  b.layernorm_forward(xb, W(L.out_norm.w), W(L.out_norm.b), n, H, eps, xb);
}

}  // namespace sppo
