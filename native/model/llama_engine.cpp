// LlamaEngine: parameters, batch validation, decoder forward and backward.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/cpu/matmul.h"
#include "model/cpu/ops.h"
#include "model/engine_internal.h"
#include "model/rope.h"

namespace sppo {

using namespace cpu_model;

namespace {
uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

template <typename T>
LlamaEngine<T>::LlamaEngine(const LlamaConfig& cfg) : cfg_(cfg) {
  validate_config(cfg);
  const int64_t V = cfg.vocab_size, H = cfg.hidden_size, I = cfg.intermediate_size;
  const int64_t qw = cfg.num_heads * cfg.head_dim, kw = cfg.num_kv_heads * cfg.head_dim;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    EngineParam<T> p;
    p.name = std::move(name);
    p.shape = std::move(shape);
    int64_t n = 1;
    for (auto d : p.shape) n *= d;
    p.data.assign(n, T(0));
    p.grad.assign(n, T(0));
    params_.push_back(std::move(p));
    return static_cast<int>(params_.size() - 1);
  };
  emb_ = add("model.embed_tokens.weight", {V, H});
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerIdx li;
    li.ln1 = add(p + "input_layernorm.weight", {H});
    li.q = add(p + "self_attn.q_proj.weight", {qw, H});
    li.k = add(p + "self_attn.k_proj.weight", {kw, H});
    li.v = add(p + "self_attn.v_proj.weight", {kw, H});
    li.o = add(p + "self_attn.o_proj.weight", {H, qw});
    li.ln2 = add(p + "post_attention_layernorm.weight", {H});
    li.gate = add(p + "mlp.gate_proj.weight", {I, H});
    li.up = add(p + "mlp.up_proj.weight", {I, H});
    li.down = add(p + "mlp.down_proj.weight", {H, I});
    layers_.push_back(li);
  }
  norm_ = add("model.norm.weight", {H});
  if (cfg.sequence_classification)
    score_ = add("score.weight", {cfg.num_labels, H});
  else if (!cfg.tie_word_embeddings)
    lm_head_ = add("lm_head.weight", {V, H});
  inv_freq_ = rope_inv_freq(cfg);
  scratch_ = new Acts();
}

template <typename T>
LlamaEngine<T>::~LlamaEngine() {
  for (auto* a : acts_) delete a;
  delete scratch_;
}

template <typename T>
EngineParam<T>* LlamaEngine<T>::find(const std::string& name) {
  for (auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

template <typename T>
void LlamaEngine<T>::init_random(uint64_t seed, double std) {
  SPPO_CHECK(std::isfinite(std) && std >= 0, "init_random: std must be finite and >= 0, got ", std);
  uint64_t s = seed;
  for (auto& p : params_) {
    if (p.shape.size() == 1) {  // norms
      std::fill(p.data.begin(), p.data.end(), T(1));
      continue;
    }
    for (auto& x : p.data) {  // Box-Muller on splitmix64: portable and deterministic in seed
      const double u1 = (static_cast<double>(splitmix64(s) >> 11) + 1.0) * 0x1.0p-53;
      const double u2 = static_cast<double>(splitmix64(s) >> 11) * 0x1.0p-53;
      x = static_cast<T>(std * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.14159265358979323846 * u2));
    }
  }
}

template <typename T>
void LlamaEngine<T>::zero_grad() {
  for (auto& p : params_) std::fill(p.grad.begin(), p.grad.end(), T(0));
}

template <typename T>
const T* LlamaEngine<T>::head_w() const {
  if (score_ >= 0) return W(score_);
  return W(lm_head_ >= 0 ? lm_head_ : emb_);
}

template <typename T>
T* LlamaEngine<T>::head_g() {
  if (score_ >= 0) return G(score_);
  return G(lm_head_ >= 0 ? lm_head_ : emb_);
}

template <typename T>
void LlamaEngine<T>::check_batch(const TokenBatch& b, const char* what, bool need_response) const {
  constexpr int64_t kMax = int64_t(1) << 31;
  SPPO_CHECK(b.B > 0 && b.B < kMax, what, ": batch size B must be >= 1, got ", b.B);
  SPPO_CHECK(b.T > 0 && b.T < kMax, what, ": sequence length T must be >= 1, got ", b.T);
  SPPO_CHECK(b.B * b.T <= (int64_t(1) << 34), what, ": B*T is too large (", b.B, "x", b.T, ")");
  SPPO_CHECK(b.tokens != nullptr, what, ": tokens is null");
  SPPO_CHECK(b.attention_mask != nullptr, what, ": attention_mask is null");
  if (need_response) SPPO_CHECK(b.response_mask != nullptr, what, ": response_mask is null");
  const int64_t V = cfg_.vocab_size;
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

template <typename T>
void LlamaEngine<T>::prepare_batch(const TokenBatch& b) {
  B_ = b.B;
  T_ = b.T;
  N_ = b.B * b.T;
  tok_.resize(N_);
  mask_.assign(b.attention_mask, b.attention_mask + N_);
  pos_.resize(N_);
  for (int64_t bi = 0; bi < B_; ++bi) {
    int64_t c = 0;
    for (int64_t t = 0; t < T_; ++t) {
      const int64_t i = bi * T_ + t;
      c += mask_[i];
      pos_[i] = mask_[i] ? c - 1 : 0;  // transformers: cumsum(mask) - 1, pads at 0
      // Padding ids never reach a real token's result; any id keeps the lookup in range.
      tok_[i] = mask_[i] ? b.tokens[i] : 0;
    }
  }
  const int64_t half = cfg_.head_dim / 2;
  cos_.resize(N_ * half);
  sin_.resize(N_ * half);
  rope_tables<T>(inv_freq_, pos_.data(), N_, cos_.data(), sin_.data());
}

template <typename T>
void LlamaEngine<T>::layer_forward(int l, const T* x, Acts& a, T* x_out) {
  const LayerIdx& li = layers_[l];
  const int64_t N = N_, H = cfg_.hidden_size, I = cfg_.intermediate_size;
  const int64_t nh = cfg_.num_heads, nkv = cfg_.num_kv_heads, hd = cfg_.head_dim;
  const int64_t qw = nh * hd, kw = nkv * hd;
  rmsnorm_forward(x, W(li.ln1), N, H, cfg_.rms_norm_eps, a.xn1.data(), a.rstd1.data());
  matmul_nt(a.xn1.data(), W(li.q), a.q.data(), N, qw, H, false);
  matmul_nt(a.xn1.data(), W(li.k), a.k.data(), N, kw, H, false);
  matmul_nt(a.xn1.data(), W(li.v), a.v.data(), N, kw, H, false);
  rope_apply(a.q.data(), N, nh, hd, cos_.data(), sin_.data(), false);
  rope_apply(a.k.data(), N, nkv, hd, cos_.data(), sin_.data(), false);
  const AttnShape s{B_, T_, nh, nkv, hd, 1.0 / std::sqrt(static_cast<double>(hd))};
  attention_forward(s, a.q.data(), a.k.data(), a.v.data(), mask_.data(), a.att.data(), a.lse.data());
  std::copy(x, x + N * H, a.x1.begin());
  matmul_nt(a.att.data(), W(li.o), a.x1.data(), N, H, qw, true);
  rmsnorm_forward(a.x1.data(), W(li.ln2), N, H, cfg_.rms_norm_eps, a.xn2.data(), a.rstd2.data());
  matmul_nt(a.xn2.data(), W(li.gate), a.gate.data(), N, I, H, false);
  matmul_nt(a.xn2.data(), W(li.up), a.up.data(), N, I, H, false);
  swiglu_forward(a.gate.data(), a.up.data(), N * I, a.act.data());
  std::copy(a.x1.begin(), a.x1.begin() + N * H, x_out);
  matmul_nt(a.act.data(), W(li.down), x_out, N, H, I, true);
}

template <typename T>
void LlamaEngine<T>::layer_backward(int l, const Acts& a, T* dx) {
  // dx: d(layer output) in, d(layer input) out.
  const LayerIdx& li = layers_[l];
  const int64_t N = N_, H = cfg_.hidden_size, I = cfg_.intermediate_size;
  const int64_t nh = cfg_.num_heads, nkv = cfg_.num_kv_heads, hd = cfg_.head_dim;
  const int64_t qw = nh * hd, kw = nkv * hd;
  std::vector<T> dact(N * I), dgate(N * I), dup(N * I), dxn(N * H);
  // MLP: out = x1 + down(silu(gate) * up)
  matmul_nn(dx, W(li.down), dact.data(), N, I, H, false);
  matmul_tn_acc(dx, a.act.data(), G(li.down), N, H, I);
  swiglu_backward(a.gate.data(), a.up.data(), dact.data(), N * I, dgate.data(), dup.data());
  std::vector<T>().swap(dact);
  matmul_nn(dgate.data(), W(li.gate), dxn.data(), N, H, I, false);
  matmul_nn(dup.data(), W(li.up), dxn.data(), N, H, I, true);
  matmul_tn_acc(dgate.data(), a.xn2.data(), G(li.gate), N, I, H);
  matmul_tn_acc(dup.data(), a.xn2.data(), G(li.up), N, I, H);
  std::vector<T>().swap(dgate);
  std::vector<T>().swap(dup);
  rmsnorm_backward(a.x1.data(), W(li.ln2), a.rstd2.data(), dxn.data(), N, H, dx, G(li.ln2), true);
  // Attention: x1 = x + o_proj(attn(rope(q), rope(k), v))
  std::vector<T> datt(N * qw), dq(N * qw), dk(N * kw), dv(N * kw);
  matmul_nn(dx, W(li.o), datt.data(), N, qw, H, false);
  matmul_tn_acc(dx, a.att.data(), G(li.o), N, H, qw);
  const AttnShape s{B_, T_, nh, nkv, hd, 1.0 / std::sqrt(static_cast<double>(hd))};
  attention_backward(s, a.q.data(), a.k.data(), a.v.data(), mask_.data(), a.att.data(), a.lse.data(), datt.data(),
                     dq.data(), dk.data(), dv.data());
  rope_apply(dq.data(), N, nh, hd, cos_.data(), sin_.data(), true);
  rope_apply(dk.data(), N, nkv, hd, cos_.data(), sin_.data(), true);
  matmul_nn(dq.data(), W(li.q), dxn.data(), N, H, qw, false);
  matmul_nn(dk.data(), W(li.k), dxn.data(), N, H, kw, true);
  matmul_nn(dv.data(), W(li.v), dxn.data(), N, H, kw, true);
  matmul_tn_acc(dq.data(), a.xn1.data(), G(li.q), N, qw, H);
  matmul_tn_acc(dk.data(), a.xn1.data(), G(li.k), N, kw, H);
  matmul_tn_acc(dv.data(), a.xn1.data(), G(li.v), N, kw, H);
  rmsnorm_backward(a.x.data(), W(li.ln1), a.rstd1.data(), dxn.data(), N, H, dx, G(li.ln1), true);
}

template <typename T>
void LlamaEngine<T>::forward(const TokenBatch& batch, bool keep) {
  head_cached_ = false;
  prepare_batch(batch);
  const int64_t N = N_, H = cfg_.hidden_size, L = cfg_.num_layers;
  const bool full_store = keep && !checkpointing_;
  if (static_cast<int64_t>(acts_.size()) != L) {
    for (auto* a : acts_) delete a;
    acts_.assign(L, nullptr);
    for (auto& a : acts_) a = new Acts();
  }
  if (!full_store) scratch_->resize(N, cfg_, true);
  for (int64_t l = 0; l < L; ++l) {
    if (keep) {
      if (!full_store) acts_[l]->release();  // checkpointing keeps only each layer's input
      acts_[l]->resize(N, cfg_, full_store);
    } else {
      acts_[l]->release();  // a forward without backward frees old activations
    }
  }
  // Layer l reads its input from acts_[l]->x (when kept) or from a ping-pong buffer.
  std::vector<T> xa, xb;
  T* x;
  if (keep) {
    x = acts_[0]->x.data();
  } else {
    xa.resize(N * H);
    xb.resize(N * H);
    x = xa.data();
  }
  const T* E = W(emb_);
  for (int64_t r = 0; r < N; ++r) std::copy(E + tok_[r] * H, E + (tok_[r] + 1) * H, x + r * H);
  xL_.resize(N * H);
  for (int64_t l = 0; l < L; ++l) {
    Acts& a = full_store ? *acts_[l] : *scratch_;
    T* out = l + 1 < L ? (keep ? acts_[l + 1]->x.data() : (x == xa.data() ? xb.data() : xa.data())) : xL_.data();
    layer_forward(static_cast<int>(l), x, a, out);  // with full_store, a.x is x itself
    x = out;
  }
  hidden_.resize(N * H);
  rstdF_.resize(N);
  rmsnorm_forward(xL_.data(), W(norm_), N, H, cfg_.rms_norm_eps, hidden_.data(), rstdF_.data());
  kept_ = keep;
}

template <typename T>
void LlamaEngine<T>::backward(const T* d_hidden) {
  SPPO_CHECK(kept_, "backward: the last forward did not keep activations");
  const int64_t N = N_, H = cfg_.hidden_size, L = cfg_.num_layers;
  std::vector<T> dx(N * H);
  rmsnorm_backward(xL_.data(), W(norm_), rstdF_.data(), d_hidden, N, H, dx.data(), G(norm_), false);
  std::vector<T> tmp;
  for (int64_t l = L - 1; l >= 0; --l) {
    Acts* a = acts_[l];
    if (checkpointing_) {
      // Recompute this layer from its stored input; the same code on the same data gives the
      // same activations bit for bit, so gradients equal the stored-activation path.
      tmp.resize(N * H);
      std::copy(a->x.begin(), a->x.end(), scratch_->x.begin());
      layer_forward(static_cast<int>(l), a->x.data(), *scratch_, tmp.data());
      layer_backward(static_cast<int>(l), *scratch_, dx.data());
    } else {
      layer_backward(static_cast<int>(l), *a, dx.data());
    }
  }
  T* gE = G(emb_);
  for (int64_t r = 0; r < N; ++r) {
    if (!mask_[r]) continue;
    T* g = gE + tok_[r] * H;
    const T* d = dx.data() + r * H;
    for (int64_t j = 0; j < H; ++j) g[j] += d[j];
  }
  kept_ = false;
}

template class LlamaEngine<float>;
template class LlamaEngine<double>;

}  // namespace sppo
