// CPU implementation of the backend op table (backend.h): checks every tensor's element type and
// size (backend/op_checks.h, with cpu_op_rules()), then calls the fp32 or fp64 kernel. All tensors
// of one op share the compute type here (F32 or F64); the CUDA backend also takes BF16
// activations with F32 statistics.
#include "backend/cpu_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <mutex>
#include <string>
#include <unordered_map>

#include "backend/buffer.h"
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

// Calls body.template operator()<T>() with T = float or double for `dt`.
template <typename Body>
void dispatch(DType dt, Body&& body) {
  if (dt == DType::F32) body(float{});
  else body(double{});
}

std::size_t host_available() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  std::size_t kb = 0;
  while (f >> key >> kb) {
    if (key == "MemAvailable:") return kb * 1024;
    f.ignore(256, '\n');
  }
  return static_cast<std::size_t>(1) << 40;  // unknown: do not refuse
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
           format_bytes(static_cast<double>(host_available())), " available)");
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
    const std::size_t host = host_available();
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

  // Each op checks its arguments (backend/op_checks.h), then runs the fp32 or fp64 kernel.
  void embedding_forward(const Tensor& table, int64_t V, int64_t H, const Tensor& ids, int64_t n,
                         const Tensor& out) override {
    dispatch(check_embedding_forward(table, V, H, ids, n, out, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::embedding_forward(table.as<T>(), V, H, ids.as<int32_t>(), n, out.as<T>());
    });
  }
  void embedding_backward(const Tensor& dout, const Tensor& ids, int64_t n, int64_t V, int64_t H,
                          const Tensor& dtable) override {
    dispatch(check_embedding_backward(dout, ids, n, V, H, dtable, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::embedding_backward(dout.as<T>(), ids.as<int32_t>(), n, V, H, dtable.as<T>());
    });
  }
  void matmul(const Tensor& A, const Tensor& B, const Tensor& C, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
              bool accumulate) override {
    dispatch(check_matmul(A, B, C, M, N, K, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::matmul(A.as<T>(), B.as<T>(), C.as<T>(), M, N, K, ta, tb, accumulate);
    });
  }
  void rmsnorm_forward(const Tensor& x, const Tensor& w, int64_t n, int64_t H, double eps, const Tensor& y,
                       const Tensor& rstd) override {
    dispatch(check_rmsnorm_forward(x, w, n, H, y, rstd, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::rmsnorm_forward(x.as<T>(), w.as<T>(), n, H, eps, y.as<T>(), rstd.as<T>());
    });
  }
  void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, int64_t n, int64_t H,
                        const Tensor& dx, const Tensor& dw, bool accumulate_dx) override {
    dispatch(check_rmsnorm_backward(x, w, rstd, dy, n, H, dx, dw, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::rmsnorm_backward(x.as<T>(), w.as<T>(), rstd.as<T>(), dy.as<T>(), n, H, dx.as<T>(), dw.as<T>(),
                            accumulate_dx);
    });
  }
  void layernorm_forward(const Tensor& x, const Tensor& w, const Tensor& b, int64_t n, int64_t H, double eps,
                         const Tensor& y) override {
    dispatch(check_layernorm_forward(x, w, b, n, H, eps, y, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::layernorm_forward(x.as<T>(), w.as<T>(), b.as<T>(), n, H, eps, y.as<T>());
    });
  }
  void bias_act(const Tensor& x, const Tensor& b, int64_t n, int64_t H, Activation act, const Tensor& y) override {
    dispatch(check_bias_act(x, b, n, H, act, y, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::bias_act(x.as<T>(), b.empty() ? nullptr : b.as<T>(), n, H, act, y.as<T>());
    });
  }
  void rope_tables(const Tensor& inv_freq, int64_t half, const Tensor& positions, int64_t n, const Tensor& cos,
                   const Tensor& sin) override {
    dispatch(check_rope_tables(inv_freq, half, positions, n, cos, sin, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::rope_tables(inv_freq.as<float>(), half, positions.as<int32_t>(), n, cos.as<T>(), sin.as<T>());
    });
  }
  void rope_apply(const Tensor& x, int64_t n, int64_t heads, int64_t head_dim, const Tensor& cos, const Tensor& sin,
                  bool inverse) override {
    dispatch(check_rope_apply(x, n, heads, head_dim, cos, sin, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::rope_apply(x.as<T>(), n, heads, head_dim, cos.as<T>(), sin.as<T>(), inverse);
    });
  }
  void swiglu_forward(const Tensor& gate, const Tensor& up, int64_t count, const Tensor& act) override {
    dispatch(check_swiglu_forward(gate, up, count, act, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::swiglu_forward(gate.as<T>(), up.as<T>(), count, act.as<T>());
    });
  }
  void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dact, int64_t count, const Tensor& dgate,
                       const Tensor& dup) override {
    dispatch(check_swiglu_backward(gate, up, dact, count, dgate, dup, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::swiglu_backward(gate.as<T>(), up.as<T>(), dact.as<T>(), count, dgate.as<T>(), dup.as<T>());
    });
  }
  void attention_forward(const AttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                         const Tensor& out, const Tensor& lse) override {
    dispatch(check_attention_forward(s, q, k, v, mask, out, lse, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::attention_forward(s, q.as<T>(), k.as<T>(), v.as<T>(), mask.as<uint8_t>(), out.as<T>(), lse.as<T>());
    });
  }
  void attention_backward(const AttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                          const Tensor& out, const Tensor& lse, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                          const Tensor& dv) override {
    dispatch(check_attention_backward(s, q, k, v, mask, out, lse, dout, dq, dk, dv, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::attention_backward(s, q.as<T>(), k.as<T>(), v.as<T>(), mask.as<uint8_t>(), out.as<T>(), lse.as<T>(),
                              dout.as<T>(), dq.as<T>(), dk.as<T>(), dv.as<T>());
    });
  }
  void disentangled_attention(const RelAttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& pos_q, const Tensor& pos_k, const Tensor& rel_index, const Tensor& start,
                              const Tensor& out) override {
    const bool rel = s.c2p || s.p2c;
    dispatch(check_disentangled_attention(s, q, k, v, pos_q, pos_k, rel_index, start, out, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::disentangled_attention(s, q.as<T>(), k.as<T>(), v.as<T>(), s.p2c ? pos_q.as<T>() : nullptr,
                                  s.c2p ? pos_k.as<T>() : nullptr, rel ? rel_index.as<int32_t>() : nullptr,
                                  start.as<int32_t>(), out.as<T>());
    });
  }
  void kv_write(const Tensor& k, const Tensor& v, const Tensor& slots, int64_t R, int64_t kw, int64_t pool_rows,
                const Tensor& k_pool, const Tensor& v_pool) override {
    dispatch(check_kv_write(k, v, slots, R, kw, pool_rows, k_pool, v_pool, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::kv_write(k.as<T>(), v.as<T>(), slots.as<int32_t>(), R, kw, pool_rows, k_pool.as<T>(), v_pool.as<T>());
    });
  }
  void attention_decode(const PagedShape& s, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                        const Tensor& tables, const Tensor& table_rows, const Tensor& lengths,
                        const Tensor& out) override {
    dispatch(check_attention_decode(s, q, k_pool, v_pool, tables, table_rows, lengths, out, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::attention_decode(s, q.as<T>(), k_pool.as<T>(), v_pool.as<T>(), tables.as<int32_t>(),
                            table_rows.as<int32_t>(), lengths.as<int32_t>(), out.as<T>());
    });
  }
  void gather_rows(const Tensor& src, int64_t src_rows, const Tensor& idx, int64_t n, int64_t H,
                   const Tensor& dst) override {
    dispatch(check_gather_rows(src, src_rows, idx, n, H, dst, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::gather_rows(src.as<T>(), src_rows, idx.as<int32_t>(), n, H, dst.as<T>());
    });
  }
  void scatter_add_rows(const Tensor& src, const Tensor& idx, int64_t n, int64_t H, int64_t dst_rows,
                        const Tensor& dst) override {
    dispatch(check_scatter_add_rows(src, idx, n, H, dst_rows, dst, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::scatter_add_rows(src.as<T>(), idx.as<int32_t>(), n, H, dst_rows, dst.as<T>());
    });
  }
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
    dispatch(check_sample_weights(logits, n, V, w, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::sample_weights(logits.as<T>(), n, V, temperature, w.as<float>());
    });
  }
  void argmax_rows(const Tensor& logits, int64_t n, int64_t V, const Tensor& tokens) override {
    dispatch(check_argmax_rows(logits, n, V, tokens, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::argmax_rows(logits.as<T>(), n, V, tokens.as<int32_t>());
    });
  }
  void sample_pick(const Tensor& w, int64_t n, int64_t V, int64_t top_k, double top_p, const SampleStream* streams,
                   const Tensor& tokens, const Tensor& logp) override {
    check_sample_pick(w, n, V, streams, tokens, logp);
    cpu::sample_pick(w.as<float>(), n, V, top_k, top_p, streams, tokens.as<int32_t>(), logp.as<float>());
  }
  void sum_squares(const Tensor& g, int64_t n, const Tensor& acc) override {
    dispatch(check_sum_squares(g, n, acc, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::sum_squares(g.as<T>(), n, acc.as<double>());
    });
  }
  void rmsprop_step(const Tensor& p, const Tensor& g, const Tensor& v, int64_t n, const RmspropParams& h,
                    const Tensor& sum_squares, double max_norm, const Tensor& weights16) override {
    dispatch(check_rmsprop_step(p, g, v, n, sum_squares, weights16, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::rmsprop_step(p.as<T>(), g.as<T>(), v.as<T>(), n, h, sum_squares.as<double>(), max_norm,
                        weights16.as<uint16_t>());
    });
  }
  void adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, int64_t n, const AdamwParams& h,
                  const Tensor& sum_squares, double max_norm, const Tensor& weights16) override {
    dispatch(check_adamw_step(p, g, m, v, n, sum_squares, weights16, rules_), [&](auto t) {
      using T = decltype(t);
      cpu::adamw_step(p.as<T>(), g.as<T>(), m.as<T>(), v.as<T>(), n, h, sum_squares.as<double>(), max_norm,
                      weights16.as<uint16_t>());
    });
  }

 private:
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
