// The backend op checks (backend/op_checks.h).
#include "backend/op_checks.h"

#include <algorithm>
#include <string>

namespace sppo {
namespace {

// t's type when it is one of `allowed` (the backend's compute or state types); else the error
// every backend words the same way.
DType type_in(const Tensor& t, const std::vector<DType>& allowed, const char* op, const OpRules& r) {
  if (std::find(allowed.begin(), allowed.end(), t.dtype) != allowed.end()) return t.dtype;
  std::string names;
  for (std::size_t i = 0; i < allowed.size(); ++i)
    names += std::string(i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ") + dtype_name(allowed[i]);
  fail(op, ": the ", r.backend, " backend computes in ", names, " (got ", dtype_name(t.dtype), ")");
}
DType compute_type(const Tensor& t, const char* op, const OpRules& r) { return type_in(t, r.compute, op, r); }
DType state_type(const Tensor& t, const char* op, const OpRules& r) { return type_in(t, r.state, op, r); }
// The type of the statistics over `t` (the log-probs' rows, the loss columns): wide() of its type
// when the backend computes in it, else F32 (the kernel or a later check names what is wrong).
DType stat_type(const Tensor& t, const OpRules& r) { return r.computes(t.dtype) ? wide(t.dtype) : DType::F32; }

// A weight gradient (dtable, dw) of an op computing in dt: wide(dt), or BF16 beside BF16 inputs.
void require_weight_grad(const Tensor& g, DType dt, int64_t n, const char* op, const char* arg) {
  if (!g.empty() && weight_grad_allowed(dt, g.dtype)) {
    require(g, g.dtype, n, op, arg);
    return;
  }
  require(g, wide(dt), n, op, arg);  // names the type it must be
}
// An optimizer step's gradient beside state of type dt: dt, or BF16 beside F32.
void require_step_grad(const Tensor& g, DType dt, int64_t n, const char* op) {
  require(g, !g.empty() && step_grad_allowed(dt, g.dtype) ? g.dtype : dt, n, op, "g");
}

void check_attn_shape(const AttnShape& s, const char* op) {
  SPPO_CHECK(s.B >= 0 && s.T >= 0 && s.hd > 0 && s.nkv > 0 && s.nh % s.nkv == 0, op, ": bad shape (B ", s.B, ", T ",
             s.T, ", heads ", s.nh, "/", s.nkv, ", head_dim ", s.hd, ")");
}

}  // namespace

bool OpRules::computes(DType t) const { return std::find(compute.begin(), compute.end(), t) != compute.end(); }

const OpRules& cpu_op_rules() {
  static const OpRules rules{"CPU", {DType::F32, DType::F64, DType::BF16, DType::F16}, {DType::F32, DType::F64}, true,
                             false};
  return rules;
}
const OpRules& cuda_op_rules() {
  static const OpRules rules{"CUDA", {DType::F32, DType::BF16, DType::F16}, {DType::F32}, false, true};
  return rules;
}

DType check_embedding_forward(const Tensor& table, int64_t V, int64_t H, const Tensor& ids, int64_t n,
                              const Tensor& out, const OpRules& r) {
  const char* op = "embedding_forward";
  const DType dt = compute_type(table, op, r);
  require(table, dt, V * H, op, "table");
  require(ids, DType::I32, n, op, "ids");
  require(out, dt, n * H, op, "out");
  return dt;
}

DType check_embedding_backward(const Tensor& dout, const Tensor& ids, int64_t n, int64_t V, int64_t H,
                               const Tensor& dtable, const OpRules& r) {
  const char* op = "embedding_backward";
  // dtable is a weight gradient (the F32 or BF16 gradient arena under BF16), so dout carries the
  // compute type.
  const DType dt = compute_type(dout, op, r);
  require(dout, dt, n * H, op, "dout");
  require(ids, DType::I32, n, op, "ids");
  require_weight_grad(dtable, dt, V * H, op, "dtable");
  return dt;
}

DType check_matmul(const Tensor& A, const Tensor& B, const Tensor& C, int64_t M, int64_t N, int64_t K,
                   const OpRules& r) {
  const char* op = "matmul";
  // C may be wider than A and B (F32 over BF16), so the inputs carry the compute type.
  const DType in = compute_type(A, op, r);
  require(A, in, M * K, op, "A");
  require(B, in, K * N, op, "B");
  // 16-bit products may write fp32 (the gradients of the bf16 mode); others write their own type.
  const bool half = in == DType::BF16 || in == DType::F16;
  if (half)
    SPPO_CHECK(C.dtype == DType::F32 || C.dtype == in, op, ": C must be F32 or ", dtype_name(in), " (got ",
               dtype_name(C.dtype), ")");
  require(C, half ? C.dtype : in, M * N, op, "C");
  return in;
}

DType check_rmsnorm_forward(const Tensor& x, const Tensor& w, int64_t n, int64_t H, const Tensor& y,
                            const Tensor& rstd, const OpRules& r) {
  const char* op = "rmsnorm_forward";
  const DType dt = compute_type(x, op, r);
  require(x, dt, n * H, op, "x");
  require(w, dt, H, op, "w");
  require(y, dt, n * H, op, "y");
  require(rstd, wide(dt), n, op, "rstd");
  return dt;
}

DType check_rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, int64_t n,
                             int64_t H, const Tensor& dx, const Tensor& dw, const OpRules& r) {
  const char* op = "rmsnorm_backward";
  const DType dt = compute_type(x, op, r);
  require(x, dt, n * H, op, "x");
  require(w, dt, H, op, "w");
  require(rstd, wide(dt), n, op, "rstd");
  require(dy, dt, n * H, op, "dy");
  require(dx, dt, n * H, op, "dx");
  require_weight_grad(dw, dt, H, op, "dw");
  return dt;
}

DType check_layernorm_forward(const Tensor& x, const Tensor& w, const Tensor& b, int64_t n, int64_t H, double eps,
                              const Tensor& y, const OpRules& r) {
  const char* op = "layernorm_forward";
  const DType dt = compute_type(x, op, r);
  SPPO_CHECK(n >= 0 && H > 0, op, ": bad shape (n ", n, ", H ", H, ")");
  SPPO_CHECK(eps >= 0, op, ": eps must be >= 0 (got ", eps, ")");
  require(x, dt, n * H, op, "x");
  require(w, dt, H, op, "w");
  require(b, dt, H, op, "b");
  require(y, dt, n * H, op, "y");
  return dt;
}

DType check_bias_act(const Tensor& x, const Tensor& b, int64_t n, int64_t H, Activation act, const Tensor& y,
                     const OpRules& r) {
  const char* op = "bias_act";
  const DType dt = compute_type(x, op, r);
  SPPO_CHECK(n >= 0 && H > 0, op, ": bad shape (n ", n, ", H ", H, ")");
  SPPO_CHECK(act == Activation::Identity || act == Activation::Gelu || act == Activation::Tanh, op,
             ": unknown activation ", static_cast<int>(act));
  require(x, dt, n * H, op, "x");
  if (!b.empty()) require(b, dt, H, op, "b");
  require(y, dt, n * H, op, "y");
  return dt;
}

DType check_rope_tables(const Tensor& inv_freq, int64_t half, const Tensor& positions, int64_t n, const Tensor& cos,
                        const Tensor& sin, const OpRules& r) {
  const char* op = "rope_tables";
  const DType dt = compute_type(cos, op, r);
  require(inv_freq, DType::F32, half, op, "inv_freq");
  require(positions, DType::I32, n, op, "positions");
  require(cos, dt, n * half, op, "cos");
  require(sin, dt, n * half, op, "sin");
  return dt;
}

DType check_rope_apply(const Tensor& x, int64_t n, int64_t heads, int64_t head_dim, const Tensor& cos,
                       const Tensor& sin, const OpRules& r) {
  const char* op = "rope_apply";
  const DType dt = compute_type(x, op, r);
  SPPO_CHECK(head_dim % 2 == 0, op, ": head_dim must be even (got ", head_dim, ")");
  require(x, dt, n * (heads * head_dim), op, "x");
  require(cos, dt, n * (head_dim / 2), op, "cos");
  require(sin, dt, n * (head_dim / 2), op, "sin");
  return dt;
}

DType check_swiglu_forward(const Tensor& gate, const Tensor& up, int64_t count, const Tensor& act, const OpRules& r) {
  const char* op = "swiglu_forward";
  const DType dt = compute_type(gate, op, r);
  require(gate, dt, count, op, "gate");
  require(up, dt, count, op, "up");
  require(act, dt, count, op, "act");
  return dt;
}

DType check_swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dact, int64_t count,
                            const Tensor& dgate, const Tensor& dup, const OpRules& r) {
  const char* op = "swiglu_backward";
  const DType dt = compute_type(gate, op, r);
  require(gate, dt, count, op, "gate");
  require(up, dt, count, op, "up");
  require(dact, dt, count, op, "dact");
  require(dgate, dt, count, op, "dgate");
  require(dup, dt, count, op, "dup");
  return dt;
}

DType check_attention_forward(const AttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& mask, const Tensor& out, const Tensor& lse, const OpRules& r) {
  const char* op = "attention_forward";
  check_attn_shape(s, op);
  const DType dt = compute_type(q, op, r);
  const int64_t N = s.B * s.T, qw = s.nh * s.hd, kw = s.nkv * s.hd;
  require(q, dt, N * qw, op, "q");
  require(k, dt, N * kw, op, "k");
  require(v, dt, N * kw, op, "v");
  require(mask, DType::U8, N, op, "mask");
  require(out, dt, N * qw, op, "out");
  require(lse, wide(dt), N * s.nh, op, "lse");
  return dt;
}

DType check_attention_backward(const AttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                               const Tensor& mask, const Tensor& out, const Tensor& lse, const Tensor& dout,
                               const Tensor& dq, const Tensor& dk, const Tensor& dv, const OpRules& r) {
  const char* op = "attention_backward";
  check_attn_shape(s, op);
  const DType dt = compute_type(q, op, r);
  const int64_t N = s.B * s.T, qw = s.nh * s.hd, kw = s.nkv * s.hd;
  require(q, dt, N * qw, op, "q");
  require(k, dt, N * kw, op, "k");
  require(v, dt, N * kw, op, "v");
  require(mask, DType::U8, N, op, "mask");
  require(out, dt, N * qw, op, "out");
  require(lse, wide(dt), N * s.nh, op, "lse");
  require(dout, dt, N * qw, op, "dout");
  require(dq, dt, N * qw, op, "dq");
  require(dk, dt, N * kw, op, "dk");
  require(dv, dt, N * kw, op, "dv");
  return dt;
}

DType check_disentangled_attention(const RelAttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                                   const Tensor& pos_q, const Tensor& pos_k, const Tensor& rel_index,
                                   const Tensor& start, const Tensor& out, const OpRules& r) {
  const char* op = "disentangled_attention";
  const DType dt = compute_type(q, op, r);
  SPPO_CHECK(s.S >= 0 && s.N >= 0 && s.nh > 0 && s.hd > 0 && s.P >= 0 && s.max_len >= 1, op, ": bad shape (S ", s.S,
             ", N ", s.N, ", heads ", s.nh, ", head_dim ", s.hd, ", P ", s.P, ", max_len ", s.max_len, ")");
  const int64_t w = s.nh * s.hd;
  require(q, dt, s.N * w, op, "q");
  require(k, dt, s.N * w, op, "k");
  require(v, dt, s.N * w, op, "v");
  if (s.p2c) require(pos_q, dt, s.P * w, op, "pos_q");
  if (s.c2p) require(pos_k, dt, s.P * w, op, "pos_k");
  if (s.c2p || s.p2c) require(rel_index, DType::I32, 2 * s.max_len - 1, op, "rel_index");
  require(start, DType::I32, s.S + 1, op, "start");
  require(out, dt, s.N * w, op, "out");
  return dt;
}

DType check_kv_write(const Tensor& k, const Tensor& v, const Tensor& slots, int64_t R, int64_t kw, int64_t pool_rows,
                     const Tensor& k_pool, const Tensor& v_pool, const OpRules& r) {
  const char* op = "kv_write";
  const DType dt = compute_type(k, op, r);
  require(k, dt, R * kw, op, "k");
  require(v, dt, R * kw, op, "v");
  require(slots, DType::I32, R, op, "slots");
  require(k_pool, dt, pool_rows * kw, op, "k_pool");
  require(v_pool, dt, pool_rows * kw, op, "v_pool");
  return dt;
}

DType check_attention_decode(const PagedShape& s, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                             const Tensor& tables, const Tensor& table_rows, const Tensor& lengths,
                             const Tensor& out, const OpRules& r) {
  const char* op = "attention_decode";
  const DType dt = compute_type(q, op, r);
  const int64_t qw = s.nh * s.hd, kw = s.nkv * s.hd, pool_rows = s.num_blocks * s.block_size;
  require(q, dt, s.R * qw, op, "q");
  require(k_pool, dt, pool_rows * kw, op, "k_pool");
  require(v_pool, dt, pool_rows * kw, op, "v_pool");
  require(table_rows, DType::I32, s.R, op, "table_rows");
  require(lengths, DType::I32, s.R, op, "lengths");
  require(out, dt, s.R * qw, op, "out");
  if (!r.host_memory) {
    // tables is sized by the largest table row, which lives on the device: its type is checked
    // now, its size by the kernel (deferred, with this message).
    require(tables, DType::I32, 0, op, "tables");
    return dt;
  }
  int64_t rows = 0;
  // In 64 bits: table_rows[r] + 1 in int32 wraps at 2^31 - 1 and would size tables as empty.
  for (int64_t i = 0; i < s.R; ++i) rows = std::max<int64_t>(rows, int64_t{table_rows.as<int32_t>()[i]} + 1);
  require(tables, DType::I32, rows * s.table_stride, op, "tables");
  return dt;
}

DType check_gather_rows(const Tensor& src, int64_t src_rows, const Tensor& idx, int64_t n, int64_t H,
                        const Tensor& dst, const OpRules& r) {
  const char* op = "gather_rows";
  const DType dt = compute_type(src, op, r);
  require(src, dt, src_rows * H, op, "src");
  require(idx, DType::I32, n, op, "idx");
  require(dst, dt, n * H, op, "dst");
  return dt;
}

DType check_scatter_add_rows(const Tensor& src, const Tensor& idx, int64_t n, int64_t H, int64_t dst_rows,
                             const Tensor& dst, const OpRules& r) {
  const char* op = "scatter_add_rows";
  const DType dt = compute_type(src, op, r);
  require(src, dt, n * H, op, "src");
  require(idx, DType::I32, n, op, "idx");
  require(dst, dt, dst_rows * H, op, "dst");
  return dt;
}

DType check_segment_sum(const Tensor& x, const Tensor& seg, int64_t n, int64_t S, const Tensor& out,
                        const OpRules& r) {
  const char* op = "segment_sum";
  const DType dt = state_type(out, op, r);
  require(x, dt, n, op, "x");
  require(seg, DType::I32, n, op, "seg");
  require(out, dt, S, op, "out");
  return dt;
}

DType check_expand_segments(const Tensor& x, const Tensor& seg, int64_t n, int64_t S, const Tensor& out,
                            const OpRules& r) {
  const char* op = "expand_segments";
  const DType dt = state_type(out, op, r);
  require(x, dt, S, op, "x");
  require(seg, DType::I32, n, op, "seg");
  require(out, dt, n, op, "out");
  return dt;
}

DType check_logprob_forward(const Tensor& logits, int64_t N, int64_t V, const Tensor& labels,
                            const Tensor& token_logp, const Tensor& lse, const OpRules& r) {
  const char* op = "logprob_forward";
  require(labels, DType::I32, N, op, "labels");
  const DType rows = stat_type(logits, r);
  require(logits, logits.dtype, N * V, op, "logits");
  require(token_logp, rows, N, op, "token_logp");
  if (!lse.empty()) require(lse, rows, N, op, "lse");
  return rows;
}

DType check_logprob_backward(const Tensor& logits, int64_t N, int64_t V, const Tensor& labels,
                             const Tensor& grad_token, const Tensor& lse, const Tensor& grad_logits, const OpRules& r) {
  const char* op = "logprob_backward";
  require(labels, DType::I32, N, op, "labels");
  const DType rows = stat_type(logits, r);
  require(logits, logits.dtype, N * V, op, "logits");
  require(grad_token, rows, N, op, "grad_token");
  if (!lse.empty()) require(lse, rows, N, op, "lse");
  // The fp64 twin writes F64; otherwise grad_logits may be of another type than the logits.
  require(grad_logits, rows == DType::F64 ? DType::F64 : grad_logits.dtype, N * V, op, "grad_logits");
  return rows;
}

void check_masked_sequence_sum(const Tensor& token_logp, const Tensor& mask, int64_t B, int64_t T,
                               const Tensor& seq_logp) {
  const char* op = "masked_sequence_sum";
  require(token_logp, DType::F32, B * T, op, "token_logp");
  require(mask, DType::U8, B * T, op, "mask");
  require(seq_logp, DType::F32, B, op, "seq_logp");
}

DType check_sppo_loss(int64_t B, const LossTensors& in, const LossResultTensors& out, const OpRules& r) {
  const char* op = "sppo_loss";
  // The loss columns are statistics (sequence log-probs): wide() of policy_chosen's type, F32
  // when that is no compute type (the message then names policy_chosen).
  const DType dt = stat_type(in.policy_chosen, r);
  auto opt = [&](const Tensor& t, const char* arg) {
    if (!t.empty()) require(t, dt, B, op, arg);
  };
  require(in.policy_chosen, dt, B, op, "policy_chosen");
  require(in.policy_rejected, dt, B, op, "policy_rejected");
  require(in.ref_chosen, dt, B, op, "ref_chosen");
  require(in.ref_rejected, dt, B, op, "ref_rejected");
  opt(in.chosen_probs, "chosen_probs");
  opt(in.chosen_probs_win, "chosen_probs_win");
  opt(in.chosen_probs_lose, "chosen_probs_lose");
  opt(out.losses, "losses");
  opt(out.grad_chosen, "grad_chosen");
  opt(out.grad_rejected, "grad_rejected");
  opt(out.rewards_chosen, "rewards_chosen");
  opt(out.rewards_rejected, "rewards_rejected");
  if (r.loss_needs_summary || !out.summary.empty()) require(out.summary, DType::F64, 5, op, "summary");
  return dt;
}

DType check_sample_weights(const Tensor& logits, int64_t n, int64_t V, const Tensor& w, const OpRules& r) {
  const char* op = "sample_weights";
  const DType dt = compute_type(logits, op, r);
  require(logits, dt, n * V, op, "logits");
  require(w, DType::F32, n * V, op, "w");
  return dt;
}

DType check_argmax_rows(const Tensor& logits, int64_t n, int64_t V, const Tensor& tokens, const OpRules& r) {
  const char* op = "argmax_rows";
  const DType dt = compute_type(logits, op, r);
  require(logits, dt, n * V, op, "logits");
  require(tokens, DType::I32, n, op, "tokens");
  return dt;
}

void check_sample_pick(const Tensor& w, int64_t n, int64_t V, const SampleStream* streams, const Tensor& tokens,
                       const Tensor& logp) {
  const char* op = "sample_pick";
  require(w, DType::F32, n * V, op, "w");
  require(tokens, DType::I32, n, op, "tokens");
  require(logp, DType::F32, n, op, "logp");
  SPPO_CHECK(n == 0 || streams != nullptr, op, ": streams is null");
}

DType check_sum_squares(const Tensor& g, int64_t n, const Tensor& acc, const OpRules& r) {
  const char* op = "sum_squares";
  // BF16: the bf16 gradient arena, on a backend that computes in BF16 (widened, squared in double).
  const DType dt = g.dtype == DType::BF16 && r.computes(DType::BF16) ? DType::BF16 : state_type(g, op, r);
  require(g, dt, n, op, "g");
  require(acc, DType::F64, 1, op, "acc");
  return dt;
}

namespace {
// The optional bf16 weights an optimizer step writes from its F32 master p.
void check_weights16(const Tensor& w16, DType dt, int64_t n, const char* op) {
  if (w16.empty()) return;
  SPPO_CHECK(dt == DType::F32, op, ": weights16 needs an F32 master p (got ", dtype_name(dt), ")");
  require(w16, DType::BF16, n, op, "weights16");
}
}  // namespace

DType check_rmsprop_step(const Tensor& p, const Tensor& g, const Tensor& v, int64_t n, const Tensor& sum_squares,
                         const Tensor& weights16, const OpRules& r) {
  const char* op = "rmsprop_step";
  const DType dt = state_type(p, op, r);
  require(p, dt, n, op, "p");
  require_step_grad(g, dt, n, op);
  require(v, dt, n, op, "v");
  require(sum_squares, DType::F64, 1, op, "sum_squares");
  check_weights16(weights16, dt, n, op);
  return dt;
}

DType check_adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, int64_t n,
                       const Tensor& sum_squares, const Tensor& weights16, const OpRules& r) {
  const char* op = "adamw_step";
  const DType dt = state_type(p, op, r);
  require(p, dt, n, op, "p");
  require_step_grad(g, dt, n, op);
  require(m, dt, n, op, "m");
  require(v, dt, n, op, "v");
  require(sum_squares, DType::F64, 1, op, "sum_squares");
  check_weights16(weights16, dt, n, op);
  return dt;
}

}  // namespace sppo
