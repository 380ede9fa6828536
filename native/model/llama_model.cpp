// LlamaModel: weights, batch checks and upload, the decoder forward and backward, memory plans.
#include "model/llama_model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/llama_impl.h"
#include "model/llama_plans.h"
#include "model/rope_freq.h"
#include "model/weight_arena.h"

namespace sppo {

LlamaModel::Impl::Impl(std::shared_ptr<Backend> b, const LlamaConfig& c, Precision p)
    : be(std::move(b)), cfg(c), prec(p), dt(dtypes_of(p)), layout(c), batch_ws(be, "the batch"),
      act_ws(be, "the activations"), head_ws(be, "the log-prob head"), bwd_ws(be, "the backward pass"),
      decode_ws(be, "the decode step") {
  check_precision_on(*be, p);
  check_llama_precision(p);
  weights = zeroed_weights(be, dt.weight, layout.total(), "the model's weights");
  const std::vector<float> inv = rope_inv_freq(c);
  inv_freq = Buffer(be, inv.size() * sizeof(float));
  be->upload(inv_freq.data(), inv.data(), inv.size() * sizeof(float));
}

Tensor LlamaModel::Impl::W(int i) const {
  const ParamSpec& p = layout[i];
  return weights.view(dt.weight, p.numel, static_cast<std::size_t>(p.offset) * dtype_size(dt.weight));
}

Tensor LlamaModel::Impl::G(const Tensor& grads, const ParamSpec& p) { return grads.slice(p.offset, p.numel); }

LlamaModel::LlamaModel(std::shared_ptr<Backend> backend, const LlamaConfig& config, Precision precision)
    : impl_(std::make_unique<Impl>(std::move(backend), config, precision)) {}
LlamaModel::~LlamaModel() = default;

const LlamaConfig& LlamaModel::config() const { return impl_->cfg; }
Precision LlamaModel::precision() const { return impl_->prec; }
Dtypes LlamaModel::dtypes() const { return impl_->dt; }
Backend& LlamaModel::backend() const { return *impl_->be; }
const std::shared_ptr<Backend>& LlamaModel::backend_ptr() const { return impl_->be; }
const ParamLayout& LlamaModel::layout() const { return impl_->layout; }
Tensor LlamaModel::weights() const { return impl_->weights.view(impl_->dt.weight, impl_->layout.total()); }
Tensor LlamaModel::param(int i) const {
  SPPO_CHECK(i >= 0 && i < static_cast<int>(impl_->layout.params().size()), "parameter index ", i, " out of range");
  return impl_->W(i);
}
Tensor LlamaModel::param(const std::string& name) const {
  const int i = impl_->layout.find(name);
  SPPO_CHECK(i >= 0, "no parameter named '", name, "'");
  return impl_->W(i);
}
void LlamaModel::set_gradient_checkpointing(bool on) { impl_->checkpointing = on; }
void LlamaModel::release_decode_workspace() { impl_->decode_ws.release(); }
bool LlamaModel::gradient_checkpointing() const { return impl_->checkpointing; }
void LlamaModel::set_cancel(CancelPoint c) { impl_->cancel = c; }
const CancelPoint& LlamaModel::cancel_point() const { return impl_->cancel; }

void LlamaModel::init_random(uint64_t seed, double std) {
  SPPO_CHECK(std::isfinite(std) && std >= 0, "init_random: std must be finite and >= 0, got ", std);
  Impl& m = *impl_;
  // Drawn in the natural parameter order (embedding, layers 0.., norm, head) whatever the arena
  // order, so a seed gives the same model as before the arena existed.
  std::vector<int> order;
  order.push_back(m.layout.embedding());
  for (int64_t l = 0; l < m.cfg.num_layers; ++l) {
    const auto& L = m.layout.layer(l);
    for (int i : {L.ln1, L.q, L.k, L.v, L.o, L.ln2, L.gate, L.up, L.down}) order.push_back(i);
  }
  order.push_back(m.layout.final_norm());
  if (m.layout.head() != m.layout.embedding()) order.push_back(m.layout.head());
  uint64_t s = seed;
  for (int i : order) {
    const ParamSpec& p = m.layout[i];
    std::vector<double> v(static_cast<size_t>(p.numel));
    if (p.shape.size() == 1) std::fill(v.begin(), v.end(), 1.0);
    else fill_normal(v, s, std);
    upload_values(*m.be, m.W(i), v);
  }
}

void LlamaModel::check_batch(const TokenBatch& b, const char* what, bool need_response) const {
  constexpr int64_t kMax = int64_t(1) << 31;
  SPPO_CHECK(b.B > 0 && b.B < kMax, what, ": batch size B must be >= 1, got ", b.B);
  SPPO_CHECK(b.T > 0 && b.T < kMax, what, ": sequence length T must be >= 1, got ", b.T);
  SPPO_CHECK(b.B * b.T < kMax, what, ": B*T is too large (", b.B, "x", b.T, ")");
  SPPO_CHECK(b.tokens != nullptr, what, ": tokens is null");
  SPPO_CHECK(b.attention_mask != nullptr, what, ": attention_mask is null");
  if (need_response) SPPO_CHECK(b.response_mask != nullptr, what, ": response_mask is null");
  const int64_t V = impl_->cfg.vocab_size;
  for (int64_t bi = 0; bi < b.B; ++bi)
    for (int64_t t = 0; t < b.T; ++t) {
      const int64_t i = bi * b.T + t;
      const uint8_t m = b.attention_mask[i];
      SPPO_CHECK(m <= 1, what, ": attention_mask[", bi, ", ", t, "] must be 0 or 1, got ", int(m));
      if (m) {
        SPPO_CHECK(b.tokens[i] >= 0 && b.tokens[i] < V, what, ": tokens[", bi, ", ", t, "] = ", b.tokens[i],
                   " is outside the vocabulary [0, ", V, ")");
      }
      if (need_response) {
        const uint8_t r = b.response_mask[i];
        SPPO_CHECK(r <= 1, what, ": response_mask[", bi, ", ", t, "] must be 0 or 1, got ", int(r));
        if (r) {
          SPPO_CHECK(m, what, ": response_mask[", bi, ", ", t, "] is set on a padding position");
          SPPO_CHECK(t > 0 && b.attention_mask[i - 1], what, ": response_mask[", bi, ", ", t,
                     "] is set but the previous position is missing or padding, so nothing predicts it");
        }
      }
    }
}

void LlamaModel::Impl::prepare_batch(const TokenBatch& b) {
  B = b.B;
  T = b.T;
  N = b.B * b.T;
  ids_h.resize(N);
  pos_h.resize(N);
  mask_h.assign(b.attention_mask, b.attention_mask + N);
  for (int64_t bi = 0; bi < B; ++bi) {
    int32_t c = 0;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t i = bi * T + t;
      c += mask_h[i];
      pos_h[i] = mask_h[i] ? c - 1 : 0;  // transformers: cumsum(mask) - 1, pads at 0
      ids_h[i] = mask_h[i] ? b.tokens[i] : -1;
    }
  }
  const int64_t half = cfg.head_dim / 2;
  auto v = batch_ws.take(llama_batch_plan(cfg, dt, N));
  ids = v[0];
  mask = v[1];
  pos = v[2];
  cos = v[3];
  sin = v[4];
  be->upload(ids.data, ids_h.data(), ids.bytes());
  be->upload(mask.data, mask_h.data(), mask.bytes());
  be->upload(pos.data, pos_h.data(), pos.bytes());
  be->rope_tables(inv_freq.view(DType::F32, half), half, pos, N, cos, sin);
}

namespace {
// Reads llama_plans.cpp's add_layer views back in the same order.
void read_layer(const std::vector<Tensor>& v, size_t& at, LayerActs& a, bool full, bool with_x) {
  if (with_x) a.x = v[at++];
  if (!full) return;
  for (Tensor* t : {&a.xn1, &a.rstd1, &a.q, &a.k, &a.v, &a.att, &a.lse, &a.x1, &a.xn2, &a.rstd2, &a.gate, &a.up, &a.act})
    *t = v[at++];
}

}  // namespace

void LlamaModel::Impl::plan_activations(bool keep, bool training) {
  (void)training;
  const bool full = keep && !checkpointing;
  const auto v = act_ws.take(llama_activation_plan(cfg, dt, N, keep, checkpointing));
  size_t at = 0;
  layers.assign(keep ? static_cast<size_t>(cfg.num_layers) : 0, LayerActs());
  for (auto& a : layers) read_layer(v, at, a, full, true);
  scratch = LayerActs();
  if (!full) read_layer(v, at, scratch, true, false);
  if (!keep) {
    xa = v[at++];
    xb = v[at++];
  }
  // Without every layer kept, xL and hidden are the scratch set's xn2 and xn1 (llama_plans.cpp says why).
  xL = full ? v[at++] : scratch.xn2;
  hidden = full ? v[at++] : scratch.xn1;
  rstdF = v[at++];
  kept_full = full;
}

BackwardTemps LlamaModel::Impl::plan_backward() {
  const auto v = bwd_ws.take(llama_backward_plan(cfg, dt, N));
  BackwardTemps t;
  size_t at = 0;
  for (Tensor* x : {&t.dx, &t.dxn, &t.dact, &t.dgate, &t.dup, &t.datt, &t.dq, &t.dk, &t.dv}) *x = v[at++];
  t.d_hidden = t.dxn;  // dead once the final norm's backward has read it (llama_plans.cpp)
  return t;
}

MemoryPlan LlamaModel::memory_plan(int64_t rows, bool training) const {
  const Impl& m = *impl_;
  MemoryPlan p;
  p.weights = m.weights.bytes();
  p.activations = llama_activation_plan(m.cfg, m.dt, rows, training, m.checkpointing).bytes();
  if (training) p.activations += llama_backward_plan(m.cfg, m.dt, rows).bytes();
  p.head = llama_logprob_head_plan(m.cfg, m.dt, rows, rows).bytes();
  return p;
}

void LlamaModel::Impl::layer_forward(int64_t l, const Tensor& x, LayerActs& a, const Tensor& out) {
  const auto& L = layout.layer(l);
  const int64_t n = N, H = cfg.hidden_size, I = cfg.intermediate_size;
  const int64_t nh = cfg.num_heads, nkv = cfg.num_kv_heads, hd = cfg.head_dim;
  const int64_t qw = nh * hd, kw = nkv * hd;
  Backend& b = *be;
  a.x = x;
  b.rmsnorm_forward(x, W(L.ln1), n, H, cfg.rms_norm_eps, a.xn1, a.rstd1);
  b.matmul(a.xn1, W(L.q), a.q, n, qw, H, false, true, false);
  b.matmul(a.xn1, W(L.k), a.k, n, kw, H, false, true, false);
  b.matmul(a.xn1, W(L.v), a.v, n, kw, H, false, true, false);
  b.rope_apply(a.q, n, nh, hd, cos, sin, false);
  b.rope_apply(a.k, n, nkv, hd, cos, sin, false);
  const AttnShape s{B, T, nh, nkv, hd, 1.0 / std::sqrt(static_cast<double>(hd))};
  b.attention_forward(s, a.q, a.k, a.v, mask, a.att, a.lse);
  b.copy(a.x1.data, x.data, static_cast<std::size_t>(n * H) * dtype_size(dt.act));
  b.matmul(a.att, W(L.o), a.x1, n, H, qw, false, true, true);
  b.rmsnorm_forward(a.x1, W(L.ln2), n, H, cfg.rms_norm_eps, a.xn2, a.rstd2);
  b.matmul(a.xn2, W(L.gate), a.gate, n, I, H, false, true, false);
  b.matmul(a.xn2, W(L.up), a.up, n, I, H, false, true, false);
  b.swiglu_forward(a.gate, a.up, n * I, a.act);
  if (out.empty()) return;  // a checkpointed recomputation: only the activations are needed
  b.copy(out.data, a.x1.data, static_cast<std::size_t>(n * H) * dtype_size(dt.act));
  b.matmul(a.act, W(L.down), out, n, H, I, false, true, true);
}

void LlamaModel::Impl::layer_backward(int64_t l, const LayerActs& a, const BackwardTemps& t, const Tensor& grads,
                                      const Tensor& dx) {
  // dx: d(layer output) in, d(layer input) out.
  const auto& L = layout.layer(l);
  const int64_t n = N, H = cfg.hidden_size, I = cfg.intermediate_size;
  const int64_t nh = cfg.num_heads, nkv = cfg.num_kv_heads, hd = cfg.head_dim;
  const int64_t qw = nh * hd, kw = nkv * hd;
  Backend& b = *be;
  auto g = [&](int i) { return G(grads, layout[i]); };
  // MLP: out = x1 + down(silu(gate) * up)
  b.matmul(dx, W(L.down), t.dact, n, I, H, false, false, false);
  b.matmul(dx, a.act, g(L.down), H, I, n, true, false, true);
  b.swiglu_backward(a.gate, a.up, t.dact, n * I, t.dgate, t.dup);
  b.matmul(t.dgate, W(L.gate), t.dxn, n, H, I, false, false, false);
  b.matmul(t.dup, W(L.up), t.dxn, n, H, I, false, false, true);
  b.matmul(t.dgate, a.xn2, g(L.gate), I, H, n, true, false, true);
  b.matmul(t.dup, a.xn2, g(L.up), I, H, n, true, false, true);
  b.rmsnorm_backward(a.x1, W(L.ln2), a.rstd2, t.dxn, n, H, dx, g(L.ln2), true);
  // Attention: x1 = x + o_proj(attn(rope(q), rope(k), v))
  b.matmul(dx, W(L.o), t.datt, n, qw, H, false, false, false);
  b.matmul(dx, a.att, g(L.o), H, qw, n, true, false, true);
  const AttnShape s{B, T, nh, nkv, hd, 1.0 / std::sqrt(static_cast<double>(hd))};
  b.attention_backward(s, a.q, a.k, a.v, mask, a.att, a.lse, t.datt, t.dq, t.dk, t.dv);
  b.rope_apply(t.dq, n, nh, hd, cos, sin, true);
  b.rope_apply(t.dk, n, nkv, hd, cos, sin, true);
  b.matmul(t.dq, W(L.q), t.dxn, n, H, qw, false, false, false);
  b.matmul(t.dk, W(L.k), t.dxn, n, H, kw, false, false, true);
  b.matmul(t.dv, W(L.v), t.dxn, n, H, kw, false, false, true);
  b.matmul(t.dq, a.xn1, g(L.q), qw, H, n, true, false, true);
  b.matmul(t.dk, a.xn1, g(L.k), kw, H, n, true, false, true);
  b.matmul(t.dv, a.xn1, g(L.v), kw, H, n, true, false, true);
  b.rmsnorm_backward(a.x, W(L.ln1), a.rstd1, t.dxn, n, H, dx, g(L.ln1), true);
}

void LlamaModel::Impl::forward(bool keep) {
  head_cached = false;
  plan_activations(keep, keep);
  const int64_t L = cfg.num_layers, H = cfg.hidden_size;
  Tensor x = keep ? layers[0].x : xa;
  be->embedding_forward(W(layout.embedding()), cfg.vocab_size, H, ids, N, x);
  for (int64_t l = 0; l < L; ++l) {
    cancel.check();
    LayerActs& a = kept_full ? layers[static_cast<size_t>(l)] : scratch;
    const Tensor out = l + 1 < L ? (keep ? layers[static_cast<size_t>(l + 1)].x : (x.data == xa.data ? xb : xa)) : xL;
    layer_forward(l, x, a, out);
    x = out;
  }
  be->rmsnorm_forward(xL, W(layout.final_norm()), N, H, cfg.rms_norm_eps, hidden, rstdF);
  kept = keep;
}

void LlamaModel::Impl::backward(const Tensor& d_hidden, const Tensor& grads, const BackwardTemps& t,
                                const BackwardHooks* hooks) {
  SPPO_CHECK(kept, "backward: the last forward did not keep activations");
  const int64_t L = cfg.num_layers, H = cfg.hidden_size;
  const Tensor dx = t.dx;
  be->rmsnorm_backward(xL, W(layout.final_norm()), rstdF, d_hidden, N, H, dx, G(grads, layout[layout.final_norm()]),
                       false);
  if (hooks && hooks->grads_ready) hooks->grads_ready(layout.ready_after_layer(L));
  for (int64_t l = L - 1; l >= 0; --l) {
    cancel.check();
    LayerActs& stored = layers[static_cast<size_t>(l)];
    if (checkpointing) {
      // Recompute this layer from its stored input: the same code on the same data gives the
      // same activations bit for bit, so gradients equal the stored-activation path. Its output
      // (the next layer's stored input) is not needed: not computed.
      layer_forward(l, stored.x, scratch, Tensor());
      layer_backward(l, scratch, t, grads, dx);
    } else {
      layer_backward(l, stored, t, grads, dx);
    }
    if (hooks && hooks->grads_ready) hooks->grads_ready(layout.ready_after_layer(l));
  }
  be->embedding_backward(dx, ids, N, cfg.vocab_size, H, G(grads, layout[layout.embedding()]));
  if (hooks && hooks->grads_ready) hooks->grads_ready(layout.total());
  kept = false;
}

void LlamaModel::Impl::download_as(const Tensor& src, const Tensor& out, int64_t n) const {
  sppo::download_as(*be, src, out, n);
}

}  // namespace sppo
