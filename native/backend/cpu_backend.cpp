// CPU implementation of the backend op table (backend.h): checks every tensor's element type and
// size (backend/op_checks.h, with cpu_op_rules()), then calls the fp32 or fp64 kernel. BF16
// tensors (the bf16 mode: BF16 activations and weights, F32 statistics and weight gradients) run
// through the fp32 kernels by emulation, widened and rounded once (backend/half_emulation.h).
#include "backend/cpu_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <mutex>
#include <string>
#include <unordered_map>

#include "backend/buffer.h"
#include "backend/half_emulation.h"
#include "core/host_memory.h"
#include "backend/op_checks.h"
#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/attention_decode.h"
#include "kernels/bias_act.h"
#include "kernels/disentangled_attention.h"
#include "kernels/embedding.h"
#include "kernels/global_norm.h"
#include "kernels/layernorm.h"
#include "kernels/logprob.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rmsprop.h"
#include "kernels/rope.h"
#include "kernels/rows.h"
#include "kernels/sample.h"
#include "kernels/sppo_loss.h"
#include "kernels/swiglu.h"

namespace sppo {
namespace {

// Calls body(T{}) with T = float or double for `dt` (the ops without BF16 tensors).
template <typename Body>
void dispatch(DType dt, Body&& body) {
  if (dt == DType::F32) body(float{});
  else body(double{});
}

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::CPU; }
  const char* name() const override { return "cpu"; }
  bool host_accessible() const override { return true; }

  CpuBackend() = default;
  CpuBackend(std::shared_ptr<HostMemoryCount> count, std::size_t limit) : count_(std::move(count)), limit_(limit) {}

  void* allocate(std::size_t bytes) override {
    if (count_ && limit_) {
      std::lock_guard<std::mutex> lock(mu_);
      if (bytes > limit_ - count_->in_use)
        fail("out of host memory: could not allocate ", format_bytes(static_cast<double>(bytes)), " (",
             format_bytes(static_cast<double>(limit_ - count_->in_use)), " available under the test limit)");
    }
    // Large blocks come from mmap: pages are committed on first touch, so a plan's worst case
    // (a KV cache sized for the longest generation) costs only what is used.
    void* p = std::aligned_alloc(kArenaAlign, (bytes + kArenaAlign - 1) / kArenaAlign * kArenaAlign);
    if (!p)
      fail("out of host memory: could not allocate ", format_bytes(static_cast<double>(bytes)), " (",
           format_bytes(static_cast<double>(host_available_memory())), " available)");
    if (count_) {
      std::lock_guard<std::mutex> lock(mu_);
      sizes_[p] = bytes;
      count_->in_use += bytes;
      count_->peak = std::max(count_->peak, count_->in_use);
    }
    return p;
  }
  void deallocate(void* p) noexcept override {
    if (count_ && p) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = sizes_.find(p);
      if (it != sizes_.end()) {
        count_->in_use -= it->second;
        sizes_.erase(it);
      }
    }
    std::free(p);
  }
  std::size_t available_memory() const override {
    const std::size_t host = host_available_memory();
    if (!count_ || !limit_) return host;
    std::lock_guard<std::mutex> lock(mu_);
    return std::min(host, limit_ - count_->in_use);
  }
  void upload(void* dst, const void* src, std::size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void download(void* dst, const void* src, std::size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void copy(void* dst, const void* src, std::size_t bytes) override {
    if (bytes) std::memmove(dst, src, bytes);
  }
  void zero(void* dst, std::size_t bytes) override {
    if (bytes) std::memset(dst, 0, bytes);
  }
  void synchronize() override {}

  // Each op checks its arguments (backend/op_checks.h), then runs the fp32 or fp64 kernel; BF16
  // tensors through the fp32 kernel by emulation (backend/half_emulation.h): io.in / io.out /
  // io.inout say how the kernel uses each tensor, with the element count it reads or writes.
  void embedding_forward(const Tensor& table, int64_t V, int64_t H, const Tensor& ids, int64_t n,
                         const Tensor& out) override {
    with_compute_type(check_embedding_forward(table, V, H, ids, n, out, rules_), [&](auto& io) {
      cpu::embedding_forward(io.in(table, V * H), V, H, ids.as<int32_t>(), n, io.out(out, n * H));
    });
  }
  void embedding_backward(const Tensor& dout, const Tensor& ids, int64_t n, int64_t V, int64_t H,
                          const Tensor& dtable) override {
    with_compute_type(check_embedding_backward(dout, ids, n, V, H, dtable, rules_), [&](auto& io) {
      cpu::embedding_backward(io.in(dout, n * H), ids.as<int32_t>(), n, V, H, io.inout(dtable, V * H));
    });
  }
  void matmul(const Tensor& A, const Tensor& B, const Tensor& C, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
              bool accumulate) override {
    with_compute_type(check_matmul(A, B, C, M, N, K, rules_), [&](auto& io) {
      cpu::matmul(io.in(A, M * K), io.in(B, K * N), accumulate ? io.inout(C, M * N) : io.out(C, M * N), M, N, K, ta,
                  tb, accumulate);
    });
  }
  void rmsnorm_forward(const Tensor& x, const Tensor& w, int64_t n, int64_t H, double eps, const Tensor& y,
                       const Tensor& rstd) override {
    with_compute_type(check_rmsnorm_forward(x, w, n, H, y, rstd, rules_), [&](auto& io) {
      cpu::rmsnorm_forward(io.in(x, n * H), io.in(w, H), n, H, eps, io.out(y, n * H), io.out(rstd, n));
    });
  }
  void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, int64_t n, int64_t H,
                        const Tensor& dx, const Tensor& dw, bool accumulate_dx) override {
    with_compute_type(check_rmsnorm_backward(x, w, rstd, dy, n, H, dx, dw, rules_), [&](auto& io) {
      cpu::rmsnorm_backward(io.in(x, n * H), io.in(w, H), io.in(rstd, n), io.in(dy, n * H), n, H,
                            accumulate_dx ? io.inout(dx, n * H) : io.out(dx, n * H), io.inout(dw, H), accumulate_dx);
    });
  }
  void layernorm_forward(const Tensor& x, const Tensor& w, const Tensor& b, int64_t n, int64_t H, double eps,
                         const Tensor& y) override {
    with_compute_type(check_layernorm_forward(x, w, b, n, H, eps, y, rules_), [&](auto& io) {
      cpu::layernorm_forward(io.in(x, n * H), io.in(w, H), io.in(b, H), n, H, eps, io.out(y, n * H));
    });
  }
  void bias_act(const Tensor& x, const Tensor& b, int64_t n, int64_t H, Activation act, const Tensor& y) override {
    with_compute_type(check_bias_act(x, b, n, H, act, y, rules_), [&](auto& io) {
      cpu::bias_act(io.in(x, n * H), io.in(b, H), n, H, act, io.out(y, n * H));  // b may be empty: null
    });
  }
  void rope_tables(const Tensor& inv_freq, int64_t half, const Tensor& positions, int64_t n, const Tensor& cos,
                   const Tensor& sin) override {
    with_compute_type(check_rope_tables(inv_freq, half, positions, n, cos, sin, rules_), [&](auto& io) {
      cpu::rope_tables(inv_freq.as<float>(), half, positions.as<int32_t>(), n, io.out(cos, n * half),
                       io.out(sin, n * half));
    });
  }
  void rope_apply(const Tensor& x, int64_t n, int64_t heads, int64_t head_dim, const Tensor& cos, const Tensor& sin,
                  bool inverse) override {
    with_compute_type(check_rope_apply(x, n, heads, head_dim, cos, sin, rules_), [&](auto& io) {
      const int64_t half = n * (head_dim / 2);
      cpu::rope_apply(io.inout(x, n * heads * head_dim), n, heads, head_dim, io.in(cos, half), io.in(sin, half),
                      inverse);
    });
  }
  void swiglu_forward(const Tensor& gate, const Tensor& up, int64_t count, const Tensor& act) override {
    with_compute_type(check_swiglu_forward(gate, up, count, act, rules_), [&](auto& io) {
      cpu::swiglu_forward(io.in(gate, count), io.in(up, count), count, io.out(act, count));
    });
  }
  void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dact, int64_t count, const Tensor& dgate,
                       const Tensor& dup) override {
    with_compute_type(check_swiglu_backward(gate, up, dact, count, dgate, dup, rules_), [&](auto& io) {
      cpu::swiglu_backward(io.in(gate, count), io.in(up, count), io.in(dact, count), count, io.out(dgate, count),
                           io.out(dup, count));
    });
  }
  void attention_forward(const AttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                         const Tensor& out, const Tensor& lse) override {
    with_compute_type(check_attention_forward(s, q, k, v, mask, out, lse, rules_), [&](auto& io) {
      const int64_t N = s.B * s.T, qn = N * s.nh * s.hd, kn = N * s.nkv * s.hd;
      cpu::attention_forward(s, io.in(q, qn), io.in(k, kn), io.in(v, kn), mask.as<uint8_t>(), io.out(out, qn),
                             io.out(lse, N * s.nh));
    });
  }
  void attention_backward(const AttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                          const Tensor& out, const Tensor& lse, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                          const Tensor& dv) override {
    with_compute_type(check_attention_backward(s, q, k, v, mask, out, lse, dout, dq, dk, dv, rules_), [&](auto& io) {
      const int64_t N = s.B * s.T, qn = N * s.nh * s.hd, kn = N * s.nkv * s.hd;
      cpu::attention_backward(s, io.in(q, qn), io.in(k, kn), io.in(v, kn), mask.as<uint8_t>(), io.in(out, qn),
                              io.in(lse, N * s.nh), io.in(dout, qn), io.out(dq, qn), io.out(dk, kn), io.out(dv, kn));
    });
  }
  void disentangled_attention(const RelAttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& pos_q, const Tensor& pos_k, const Tensor& rel_index, const Tensor& start,
                              const Tensor& out) override {
    const bool rel = s.c2p || s.p2c;
    with_compute_type(check_disentangled_attention(s, q, k, v, pos_q, pos_k, rel_index, start, out, rules_),
                      [&](auto& io) {
                        const int64_t n = s.N * s.nh * s.hd, pn = s.P * s.nh * s.hd;
                        cpu::disentangled_attention(s, io.in(q, n), io.in(k, n), io.in(v, n),
                                                    s.p2c ? io.in(pos_q, pn) : nullptr,
                                                    s.c2p ? io.in(pos_k, pn) : nullptr,
                                                    rel ? rel_index.as<int32_t>() : nullptr, start.as<int32_t>(),
                                                    io.out(out, n));
                      });
  }
  void kv_write(const Tensor& k, const Tensor& v, const Tensor& slots, int64_t R, int64_t kw, int64_t pool_rows,
                const Tensor& k_pool, const Tensor& v_pool) override {
    const DType dt = check_kv_write(k, v, slots, R, kw, pool_rows, k_pool, v_pool, rules_);
    if (dt == DType::BF16) {  // a copy: the bits as they are (widening would cost the whole pool)
      cpu::kv_write(k.as<uint16_t>(), v.as<uint16_t>(), slots.as<int32_t>(), R, kw, pool_rows, k_pool.as<uint16_t>(),
                    v_pool.as<uint16_t>());
      return;
    }
    with_compute_type(dt, [&](auto& io) {
      cpu::kv_write(io.in(k, R * kw), io.in(v, R * kw), slots.as<int32_t>(), R, kw, pool_rows,
                    io.inout(k_pool, pool_rows * kw), io.inout(v_pool, pool_rows * kw));
    });
  }
  void attention_decode(const PagedShape& s, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                        const Tensor& tables, const Tensor& table_rows, const Tensor& lengths,
                        const Tensor& out) override {
    const DType dt = check_attention_decode(s, q, k_pool, v_pool, tables, table_rows, lengths, out, rules_);
    if (k_pool.dtype == DType::BF16 && attention_decode_compact(s, q, k_pool, v_pool, tables, table_rows, lengths, out))
      return;
    with_compute_type(dt, [&](auto& io) {
                        const int64_t qn = s.R * s.nh * s.hd, pn = s.num_blocks * s.block_size * s.nkv * s.hd;
                        cpu::attention_decode(s, io.in(q, qn), io.in(k_pool, pn), io.in(v_pool, pn),
                                              tables.as<int32_t>(), table_rows.as<int32_t>(), lengths.as<int32_t>(),
                                              io.out(out, qn));
                      });
  }
  void gather_rows(const Tensor& src, int64_t src_rows, const Tensor& idx, int64_t n, int64_t H,
                   const Tensor& dst) override {
    with_compute_type(check_gather_rows(src, src_rows, idx, n, H, dst, rules_), [&](auto& io) {
      cpu::gather_rows(io.in(src, src_rows * H), src_rows, idx.as<int32_t>(), n, H, io.out(dst, n * H));
    });
  }
  void scatter_add_rows(const Tensor& src, const Tensor& idx, int64_t n, int64_t H, int64_t dst_rows,
                        const Tensor& dst) override {
    with_compute_type(check_scatter_add_rows(src, idx, n, H, dst_rows, dst, rules_), [&](auto& io) {
      cpu::scatter_add_rows(io.in(src, n * H), idx.as<int32_t>(), n, H, dst_rows, io.inout(dst, dst_rows * H));
    });
  }
  // The segment sums, the loss, the sum of squares and the optimizer steps compute in F32 or F64
  // only (OpRules::state, wide()); the sum of squares and the steps read BF16 gradients (the bf16
  // gradient arena) themselves, widened per element (optim_math::load_grad).
  void segment_sum(const Tensor& x, const Tensor& seg, int64_t n, int64_t S, const Tensor& out) override {
    dispatch(check_segment_sum(x, seg, n, S, out, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::segment_sum(x.as<T>(), seg.as<int32_t>(), n, S, out.as<T>());
    });
  }
  void expand_segments(const Tensor& x, const Tensor& seg, int64_t n, int64_t S, double scale,
                       const Tensor& out) override {
    dispatch(check_expand_segments(x, seg, n, S, out, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::expand_segments(x.as<T>(), seg.as<int32_t>(), n, S, scale, out.as<T>());
    });
  }
  void logprob_forward(const Tensor& logits, int64_t N, int64_t V, const Tensor& labels, const Tensor& token_logp,
                       const Tensor& lse) override {
    if (check_logprob_forward(logits, N, V, labels, token_logp, lse, rules_) == DType::F64) {
      cpu::logprob_forward_f64(logits.as<double>(), N, V, labels.as<int32_t>(), token_logp.as<double>(),
                               lse.as<double>());
      return;
    }
    cpu::logprob_forward(logits.data, logits.dtype, N, V, labels.as<int32_t>(), token_logp.as<float>(),
                         lse.as<float>());
  }
  void logprob_backward(const Tensor& logits, int64_t N, int64_t V, const Tensor& labels, const Tensor& grad_token,
                        const Tensor& lse, const Tensor& grad_logits) override {
    if (check_logprob_backward(logits, N, V, labels, grad_token, lse, grad_logits, rules_) == DType::F64) {
      cpu::logprob_backward_f64(logits.as<double>(), N, V, labels.as<int32_t>(), grad_token.as<double>(),
                                lse.as<double>(), grad_logits.as<double>());
      return;
    }
    cpu::logprob_backward(logits.data, logits.dtype, N, V, labels.as<int32_t>(), grad_token.as<float>(),
                          lse.as<float>(), grad_logits.data, grad_logits.dtype);
  }
  void sppo_loss(LossType type, double beta, int64_t B, const LossTensors& in, const LossResultTensors& out) override {
    dispatch(check_sppo_loss(B, in, out, rules_), [&](auto t) {
      using T = decltype(t);
      LossInputsT<T> li;
      li.B = B;
      li.policy_chosen = in.policy_chosen.as<T>();
      li.policy_rejected = in.policy_rejected.as<T>();
      li.ref_chosen = in.ref_chosen.as<T>();
      li.ref_rejected = in.ref_rejected.as<T>();
      li.chosen_probs = in.chosen_probs.as<T>();
      li.chosen_probs_win = in.chosen_probs_win.as<T>();
      li.chosen_probs_lose = in.chosen_probs_lose.as<T>();
      li.beta = beta;
      li.type = type;
      LossOutputsT<T> lo;
      lo.losses = out.losses.as<T>();
      lo.grad_chosen = out.grad_chosen.as<T>();
      lo.grad_rejected = out.grad_rejected.as<T>();
      lo.rewards_chosen = out.rewards_chosen.as<T>();
      lo.rewards_rejected = out.rewards_rejected.as<T>();
      lo.summary = out.summary.as<double>();
      lo.grad_scale = out.grad_scale;
      cpu::sppo_loss(li, lo);
    });
  }
  void masked_sequence_sum(const Tensor& token_logp, const Tensor& mask, int64_t B, int64_t T,
                           const Tensor& seq_logp) override {
    check_masked_sequence_sum(token_logp, mask, B, T, seq_logp);
    cpu::masked_sequence_sum(token_logp.as<float>(), mask.as<uint8_t>(), B, T, seq_logp.as<float>());
  }
  void sample_weights(const Tensor& logits, int64_t n, int64_t V, double temperature, const Tensor& w) override {
    with_compute_type(check_sample_weights(logits, n, V, w, rules_), [&](auto& io) {
      cpu::sample_weights(io.in(logits, n * V), n, V, temperature, w.as<float>());
    });
  }
  void argmax_rows(const Tensor& logits, int64_t n, int64_t V, const Tensor& tokens) override {
    with_compute_type(check_argmax_rows(logits, n, V, tokens, rules_), [&](auto& io) {
      cpu::argmax_rows(io.in(logits, n * V), n, V, tokens.as<int32_t>());
    });
  }
  void sample_pick(const Tensor& w, int64_t n, int64_t V, int64_t top_k, double top_p, const SampleStream* streams,
                   const Tensor& tokens, const Tensor& logp) override {
    check_sample_pick(w, n, V, streams, tokens, logp);
    cpu::sample_pick(w.as<float>(), n, V, top_k, top_p, streams, tokens.as<int32_t>(), logp.as<float>());
  }
  void sum_squares(const Tensor& g, int64_t n, const Tensor& acc) override {
    if (check_sum_squares(g, n, acc, rules_) == DType::BF16) {  // bf16 gradients: widened in the kernel
      cpu::sum_squares(g.as<uint16_t>(), n, acc.as<double>());
      return;
    }
    dispatch(g.dtype, [&](auto t) {
      using T = decltype(t);
      cpu::sum_squares(g.as<T>(), n, acc.as<double>());
    });
  }
  void rmsprop_step(const Tensor& p, const Tensor& g, const Tensor& v, int64_t n, const RmspropParams& h,
                    const Tensor& sum_squares, double max_norm, const Tensor& weights16) override {
    const DType dt = check_rmsprop_step(p, g, v, n, sum_squares, weights16, rules_);
    if (g.dtype == DType::BF16) {  // bf16 gradients beside the F32 master and state: widened per element
      cpu::rmsprop_step(p.as<float>(), g.as<uint16_t>(), v.as<float>(), n, h, sum_squares.as<double>(), max_norm,
                        weights16.as<uint16_t>());
      return;
    }
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::rmsprop_step(p.as<T>(), g.as<T>(), v.as<T>(), n, h, sum_squares.as<double>(), max_norm,
                        weights16.as<uint16_t>());
    });
  }
  void adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, int64_t n, const AdamwParams& h,
                  const Tensor& sum_squares, double max_norm, const Tensor& weights16) override {
    const DType dt = check_adamw_step(p, g, m, v, n, sum_squares, weights16, rules_);
    if (g.dtype == DType::BF16) {
      cpu::adamw_step(p.as<float>(), g.as<uint16_t>(), m.as<float>(), v.as<float>(), n, h, sum_squares.as<double>(),
                      max_norm, weights16.as<uint16_t>());
      return;
    }
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::adamw_step(p.as<T>(), g.as<T>(), m.as<T>(), v.as<T>(), n, h, sum_squares.as<double>(), max_norm,
                      weights16.as<uint16_t>());
    });
  }

 private:
  // BF16 pools: widens only the blocks the rows read (a decode step's inherent reads), not the
  // whole pool every layer and step, into a compact fp32 pool with its own block tables, and runs
  // the fp32 kernel there: the same values in the same order, so the same bits. Returns false
  // (the caller widens everything, and the kernel names the problem) when a length or block is
  // out of range.
  bool attention_decode_compact(const PagedShape& s, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                                const Tensor& tables, const Tensor& table_rows, const Tensor& lengths,
                                const Tensor& out) {
    const int32_t* tab = tables.as<int32_t>();
    const int32_t* rows = table_rows.as<int32_t>();
    const int32_t* len = lengths.as<int32_t>();
    const int64_t bs = s.block_size, kw = s.nkv * s.hd;
    if (bs <= 0) return false;
    std::unordered_map<int32_t, int32_t> compact;  // pool block -> compact block
    std::vector<int32_t> used, ctab(static_cast<size_t>(s.R * s.table_stride), 0), crows(static_cast<size_t>(s.R));
    for (int64_t r = 0; r < s.R; ++r) {
      if (len[r] < 1 || len[r] > s.table_stride * bs || rows[r] < 0) return false;
      crows[static_cast<size_t>(r)] = static_cast<int32_t>(r);
      for (int64_t b = 0; b * bs < len[r]; ++b) {
        const int32_t blk = tab[static_cast<int64_t>(rows[r]) * s.table_stride + b];
        if (blk < 0 || blk >= s.num_blocks) return false;
        auto it = compact.emplace(blk, static_cast<int32_t>(used.size())).first;
        if (it->second == static_cast<int32_t>(used.size())) used.push_back(blk);
        ctab[static_cast<size_t>(r * s.table_stride + b)] = it->second;
      }
    }
    const int64_t block_elems = bs * kw, n = static_cast<int64_t>(used.size());
    std::vector<float> kc(static_cast<size_t>(n * block_elems)), vc(kc.size());
    const uint16_t *k16 = k_pool.as<uint16_t>(), *v16 = v_pool.as<uint16_t>();
    parallel_for(n, [&](int64_t i) {
      const int64_t from = static_cast<int64_t>(used[static_cast<size_t>(i)]) * block_elems, to = i * block_elems;
      for (int64_t e = 0; e < block_elems; ++e) {
        kc[static_cast<size_t>(to + e)] = bf16_to_f32(k16[from + e]);
        vc[static_cast<size_t>(to + e)] = bf16_to_f32(v16[from + e]);
      }
    });
    PagedShape cs = s;
    cs.num_blocks = n;
    HalfEmulation io;
    const int64_t qn = s.R * s.nh * s.hd;
    cpu::attention_decode(cs, io.in(q, qn), kc.data(), vc.data(), ctab.data(), crows.data(), len, io.out(out, qn));
    io.narrow();
    return true;
  }

  const OpRules& rules_ = cpu_op_rules();
  std::shared_ptr<HostMemoryCount> count_;  // null: the shared backend, which counts nothing
  std::size_t limit_ = 0;
  mutable std::mutex mu_;
  std::unordered_map<void*, std::size_t> sizes_;
};

}  // namespace

std::shared_ptr<Backend> make_cpu_backend() { return std::make_shared<CpuBackend>(); }

std::shared_ptr<Backend> make_counting_cpu_backend(std::shared_ptr<HostMemoryCount> count, std::size_t limit) {
  SPPO_CHECK(count != nullptr, "make_counting_cpu_backend: no counter");
  return std::make_shared<CpuBackend>(std::move(count), limit);
}

}  // namespace sppo
