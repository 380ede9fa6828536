// The argument checks of the backend op table (backend.h), written once for every backend: the
// CPU backend (cpu_backend.cpp) and the CUDA backend (cuda_backend.cpp) call check_<op> before
// they run the op, so both refuse bad tensors with the same messages (the house rule "CUDA errors
// carrying the CPU's exact messages" holds by construction, not by copy).
//
// Each check takes the op's arguments and the backend's OpRules, throws sppo::Error naming the op
// and argument, and returns the op's compute type. Where the backends legitimately differ, the
// difference is a field of OpRules, never a second copy of a check.
#pragma once
#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace sppo {

struct OpRules {
  const char* backend;          // as the messages name it: "CPU", "CUDA"
  std::vector<DType> compute;   // what ops over activations and weights compute in
  std::vector<DType> state;     // what the segment sums, sum of squares and optimizer steps compute in
  // The backend's memory is the host's, so a check may read an index tensor (attention_decode
  // sizes `tables` by the largest of table_rows); otherwise the kernel checks that, deferred.
  bool host_memory;
  // The loss kernel returns its figures only through out.summary, which is then required.
  bool loss_needs_summary;

  bool computes(DType t) const;
};

// One semantic for every backend: an op's type-setting tensor is one of its inputs (A for matmul,
// dout for embedding_backward, x or q for the others); its statistics (rstd, the attention lse),
// weight gradients (dtable, dw) and loss columns are wide(compute type), and a BF16 (F16) matmul
// may write F32 or BF16 (F16): the gradients of the bf16 mode. The weight gradients of a BF16 op may also be
// BF16 (the trainer's bf16 gradient arena: fp32 sums rounded once), and the sum of squares and the
// optimizer steps read BF16 gradients beside their F32 state (weight_grad_allowed, step_grad_allowed).
inline DType wide(DType compute) { return compute == DType::BF16 || compute == DType::F16 ? DType::F32 : compute; }
// A weight gradient of an op computing in `compute` (dtable, dw) may be wide(compute), or BF16 when
// compute is BF16; an optimizer's gradient beside state of type `state` may be `state`, or BF16 when
// the state is F32.
inline bool weight_grad_allowed(DType compute, DType g) {
  return g == wide(compute) || (compute == DType::BF16 && g == DType::BF16);
}
inline bool step_grad_allowed(DType state, DType g) { return g == state || (state == DType::F32 && g == DType::BF16); }

// F32, F64 (the fp64 twin for finite differences), BF16 or F16 (emulated: half_emulation.h);
// state F32 or F64.
const OpRules& cpu_op_rules();
// F32 (the parity mode), BF16 or F16 (PairRM's fp16 mode: only its ops' kernels take F16, the
// others refuse it by name) activations and weights; state F32 only.
const OpRules& cuda_op_rules();

// embedding.h
DType check_embedding_forward(const Tensor& table, int64_t V, int64_t H, const Tensor& ids, int64_t n,
                              const Tensor& out, const OpRules& r);
DType check_embedding_backward(const Tensor& dout, const Tensor& ids, int64_t n, int64_t V, int64_t H,
                               const Tensor& dtable, const OpRules& r);
// matmul.h: returns the type of A and B (a BF16 product's C may be F32, see wide())
DType check_matmul(const Tensor& A, const Tensor& B, const Tensor& C, int64_t M, int64_t N, int64_t K,
                   const OpRules& r);
// rmsnorm.h, layernorm.h, bias_act.h
DType check_rmsnorm_forward(const Tensor& x, const Tensor& w, int64_t n, int64_t H, const Tensor& y,
                            const Tensor& rstd, const OpRules& r);
DType check_rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, int64_t n,
                             int64_t H, const Tensor& dx, const Tensor& dw, const OpRules& r);
DType check_layernorm_forward(const Tensor& x, const Tensor& w, const Tensor& b, int64_t n, int64_t H, double eps,
                              const Tensor& y, const OpRules& r);
DType check_bias_act(const Tensor& x, const Tensor& b, int64_t n, int64_t H, Activation act, const Tensor& y,
                     const OpRules& r);
// rope.h
DType check_rope_tables(const Tensor& inv_freq, int64_t half, const Tensor& positions, int64_t n, const Tensor& cos,
                        const Tensor& sin, const OpRules& r);
DType check_rope_apply(const Tensor& x, int64_t n, int64_t heads, int64_t head_dim, const Tensor& cos,
                       const Tensor& sin, const OpRules& r);
// swiglu.h
DType check_swiglu_forward(const Tensor& gate, const Tensor& up, int64_t count, const Tensor& act, const OpRules& r);
DType check_swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dact, int64_t count,
                            const Tensor& dgate, const Tensor& dup, const OpRules& r);
// attention.h, disentangled_attention.h, attention_decode.h
DType check_attention_forward(const AttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& mask, const Tensor& out, const Tensor& lse, const OpRules& r);
DType check_attention_backward(const AttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                               const Tensor& mask, const Tensor& out, const Tensor& lse, const Tensor& dout,
                               const Tensor& dq, const Tensor& dk, const Tensor& dv, const OpRules& r);
DType check_disentangled_attention(const RelAttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                                   const Tensor& pos_q, const Tensor& pos_k, const Tensor& rel_index,
                                   const Tensor& start, const Tensor& out, const OpRules& r);
DType check_kv_write(const Tensor& k, const Tensor& v, const Tensor& slots, int64_t R, int64_t kw, int64_t pool_rows,
                     const Tensor& k_pool, const Tensor& v_pool, const OpRules& r);
DType check_attention_decode(const PagedShape& s, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                             const Tensor& tables, const Tensor& table_rows, const Tensor& lengths,
                             const Tensor& out, const OpRules& r);
// rows.h
DType check_gather_rows(const Tensor& src, int64_t src_rows, const Tensor& idx, int64_t n, int64_t H,
                        const Tensor& dst, const OpRules& r);
DType check_scatter_add_rows(const Tensor& src, const Tensor& idx, int64_t n, int64_t H, int64_t dst_rows,
                             const Tensor& dst, const OpRules& r);
DType check_segment_sum(const Tensor& x, const Tensor& seg, int64_t n, int64_t S, const Tensor& out,
                        const OpRules& r);
DType check_expand_segments(const Tensor& x, const Tensor& seg, int64_t n, int64_t S, const Tensor& out,
                            const OpRules& r);
// logprob.h: return the type of the per-row outputs (token_logp or grad_token, and lse): F64 for
// the fp64 twin's F64 logits, else F32 (the kernel checks which logits types it reads)
DType check_logprob_forward(const Tensor& logits, int64_t N, int64_t V, const Tensor& labels,
                            const Tensor& token_logp, const Tensor& lse, const OpRules& r);
DType check_logprob_backward(const Tensor& logits, int64_t N, int64_t V, const Tensor& labels,
                             const Tensor& grad_token, const Tensor& lse, const Tensor& grad_logits, const OpRules& r);
void check_masked_sequence_sum(const Tensor& token_logp, const Tensor& mask, int64_t B, int64_t T,
                               const Tensor& seq_logp);
// sppo_loss.h: returns the type of the loss columns
DType check_sppo_loss(int64_t B, const LossTensors& in, const LossResultTensors& out, const OpRules& r);
// sample.h
DType check_sample_weights(const Tensor& logits, int64_t n, int64_t V, const Tensor& w, const OpRules& r);
DType check_argmax_rows(const Tensor& logits, int64_t n, int64_t V, const Tensor& tokens, const OpRules& r);
void check_sample_pick(const Tensor& w, int64_t n, int64_t V, const SampleStream* streams, const Tensor& tokens,
                       const Tensor& logp);
// global_norm.h, rmsprop.h, adamw.h (g: F32, F64 or BF16; the steps return p's type, g may be BF16
// beside an F32 p)
DType check_sum_squares(const Tensor& g, int64_t n, const Tensor& acc, const OpRules& r);
// (weights16 may be empty; when given: BF16 of n elements, and p F32, its master)
DType check_rmsprop_step(const Tensor& p, const Tensor& g, const Tensor& v, int64_t n, const Tensor& sum_squares,
                         const Tensor& weights16, const OpRules& r);
DType check_adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, int64_t n,
                       const Tensor& sum_squares, const Tensor& weights16, const OpRules& r);

}  // namespace sppo
