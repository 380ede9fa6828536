// CPU implementation of the backend op table (backend.h): checks every tensor's element type and
// size, then calls the fp32 or fp64 kernel. All tensors of one op share the compute type here
// (F32 or F64); the CUDA backend also takes BF16 activations with F32 statistics.
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

// The compute type of an op: the dtype of its main tensor, which must be F32 or F64.
DType compute_type(const Tensor& t, const char* op) {
  SPPO_CHECK(t.dtype == DType::F32 || t.dtype == DType::F64, op, ": the CPU backend computes in F32 or F64 (got ",
             dtype_name(t.dtype), ")");
  return t.dtype;
}

int64_t mul(int64_t a, int64_t b) { return a * b; }

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

  void embedding_forward(const Tensor& table, int64_t V, int64_t H, const Tensor& ids, int64_t n,
                         const Tensor& out) override {
    const char* op = "embedding_forward";
    const DType dt = compute_type(table, op);
    require(table, dt, mul(V, H), op, "table");
    require(ids, DType::I32, n, op, "ids");
    require(out, dt, mul(n, H), op, "out");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::embedding_forward(table.as<T>(), V, H, ids.as<int32_t>(), n, out.as<T>());
    });
  }
  void embedding_backward(const Tensor& dout, const Tensor& ids, int64_t n, int64_t V, int64_t H,
                          const Tensor& dtable) override {
    const char* op = "embedding_backward";
    const DType dt = compute_type(dtable, op);
    require(dout, dt, mul(n, H), op, "dout");
    require(ids, DType::I32, n, op, "ids");
    require(dtable, dt, mul(V, H), op, "dtable");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::embedding_backward(dout.as<T>(), ids.as<int32_t>(), n, V, H, dtable.as<T>());
    });
  }
  void matmul(const Tensor& A, const Tensor& B, const Tensor& C, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
              bool accumulate) override {
    const char* op = "matmul";
    const DType dt = compute_type(C, op);
    require(A, dt, mul(M, K), op, "A");
    require(B, dt, mul(K, N), op, "B");
    require(C, dt, mul(M, N), op, "C");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::matmul(A.as<T>(), B.as<T>(), C.as<T>(), M, N, K, ta, tb, accumulate);
    });
  }
  void rmsnorm_forward(const Tensor& x, const Tensor& w, int64_t n, int64_t H, double eps, const Tensor& y,
                       const Tensor& rstd) override {
    const char* op = "rmsnorm_forward";
    const DType dt = compute_type(x, op);
    require(x, dt, mul(n, H), op, "x");
    require(w, dt, H, op, "w");
    require(y, dt, mul(n, H), op, "y");
    require(rstd, dt, n, op, "rstd");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::rmsnorm_forward(x.as<T>(), w.as<T>(), n, H, eps, y.as<T>(), rstd.as<T>());
    });
  }
  void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, int64_t n, int64_t H,
                        const Tensor& dx, const Tensor& dw, bool accumulate_dx) override {
    const char* op = "rmsnorm_backward";
    const DType dt = compute_type(x, op);
    require(x, dt, mul(n, H), op, "x");
    require(w, dt, H, op, "w");
    require(rstd, dt, n, op, "rstd");
    require(dy, dt, mul(n, H), op, "dy");
    require(dx, dt, mul(n, H), op, "dx");
    require(dw, dt, H, op, "dw");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::rmsnorm_backward(x.as<T>(), w.as<T>(), rstd.as<T>(), dy.as<T>(), n, H, dx.as<T>(), dw.as<T>(),
                            accumulate_dx);
    });
  }
  void layernorm_forward(const Tensor& x, const Tensor& w, const Tensor& b, int64_t n, int64_t H, double eps,
                         const Tensor& y) override {
    const char* op = "layernorm_forward";
    const DType dt = compute_type(x, op);
    SPPO_CHECK(n >= 0 && H > 0, op, ": bad shape (n ", n, ", H ", H, ")");
    SPPO_CHECK(eps >= 0, op, ": eps must be >= 0 (got ", eps, ")");
    require(x, dt, mul(n, H), op, "x");
    require(w, dt, H, op, "w");
    require(b, dt, H, op, "b");
    require(y, dt, mul(n, H), op, "y");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::layernorm_forward(x.as<T>(), w.as<T>(), b.as<T>(), n, H, eps, y.as<T>());
    });
  }
  void bias_act(const Tensor& x, const Tensor& b, int64_t n, int64_t H, Activation act, const Tensor& y) override {
    const char* op = "bias_act";
    const DType dt = compute_type(x, op);
    SPPO_CHECK(n >= 0 && H > 0, op, ": bad shape (n ", n, ", H ", H, ")");
    SPPO_CHECK(act == Activation::Identity || act == Activation::Gelu || act == Activation::Tanh, op,
               ": unknown activation ", static_cast<int>(act));
    require(x, dt, mul(n, H), op, "x");
    if (!b.empty()) require(b, dt, H, op, "b");
    require(y, dt, mul(n, H), op, "y");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::bias_act(x.as<T>(), b.empty() ? nullptr : b.as<T>(), n, H, act, y.as<T>());
    });
  }
  void rope_tables(const Tensor& inv_freq, int64_t half, const Tensor& positions, int64_t n, const Tensor& cos,
                   const Tensor& sin) override {
    const char* op = "rope_tables";
    const DType dt = compute_type(cos, op);
    require(inv_freq, DType::F32, half, op, "inv_freq");
    require(positions, DType::I32, n, op, "positions");
    require(cos, dt, mul(n, half), op, "cos");
    require(sin, dt, mul(n, half), op, "sin");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::rope_tables(inv_freq.as<float>(), half, positions.as<int32_t>(), n, cos.as<T>(), sin.as<T>());
    });
  }
  void rope_apply(const Tensor& x, int64_t n, int64_t heads, int64_t head_dim, const Tensor& cos, const Tensor& sin,
                  bool inverse) override {
    const char* op = "rope_apply";
    const DType dt = compute_type(x, op);
    SPPO_CHECK(head_dim % 2 == 0, op, ": head_dim must be even (got ", head_dim, ")");
    require(x, dt, mul(n, heads * head_dim), op, "x");
    require(cos, dt, mul(n, head_dim / 2), op, "cos");
    require(sin, dt, mul(n, head_dim / 2), op, "sin");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::rope_apply(x.as<T>(), n, heads, head_dim, cos.as<T>(), sin.as<T>(), inverse);
    });
  }
  void swiglu_forward(const Tensor& gate, const Tensor& up, int64_t count, const Tensor& act) override {
    const char* op = "swiglu_forward";
    const DType dt = compute_type(gate, op);
    require(gate, dt, count, op, "gate");
    require(up, dt, count, op, "up");
    require(act, dt, count, op, "act");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::swiglu_forward(gate.as<T>(), up.as<T>(), count, act.as<T>());
    });
  }
  void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dact, int64_t count, const Tensor& dgate,
                       const Tensor& dup) override {
    const char* op = "swiglu_backward";
    const DType dt = compute_type(gate, op);
    require(gate, dt, count, op, "gate");
    require(up, dt, count, op, "up");
    require(dact, dt, count, op, "dact");
    require(dgate, dt, count, op, "dgate");
    require(dup, dt, count, op, "dup");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::swiglu_backward(gate.as<T>(), up.as<T>(), dact.as<T>(), count, dgate.as<T>(), dup.as<T>());
    });
  }
  static void check_attn(const AttnShape& s, const char* op) {
    SPPO_CHECK(s.B >= 0 && s.T >= 0 && s.hd > 0 && s.nkv > 0 && s.nh % s.nkv == 0, op, ": bad shape (B ", s.B, ", T ",
               s.T, ", heads ", s.nh, "/", s.nkv, ", head_dim ", s.hd, ")");
  }
  void attention_forward(const AttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                         const Tensor& out, const Tensor& lse) override {
    const char* op = "attention_forward";
    check_attn(s, op);
    const DType dt = compute_type(q, op);
    const int64_t N = s.B * s.T, qw = s.nh * s.hd, kw = s.nkv * s.hd;
    require(q, dt, N * qw, op, "q");
    require(k, dt, N * kw, op, "k");
    require(v, dt, N * kw, op, "v");
    require(mask, DType::U8, N, op, "mask");
    require(out, dt, N * qw, op, "out");
    require(lse, dt, N * s.nh, op, "lse");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::attention_forward(s, q.as<T>(), k.as<T>(), v.as<T>(), mask.as<uint8_t>(), out.as<T>(), lse.as<T>());
    });
  }
  void attention_backward(const AttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                          const Tensor& out, const Tensor& lse, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                          const Tensor& dv) override {
    const char* op = "attention_backward";
    check_attn(s, op);
    const DType dt = compute_type(q, op);
    const int64_t N = s.B * s.T, qw = s.nh * s.hd, kw = s.nkv * s.hd;
    require(q, dt, N * qw, op, "q");
    require(k, dt, N * kw, op, "k");
    require(v, dt, N * kw, op, "v");
    require(mask, DType::U8, N, op, "mask");
    require(out, dt, N * qw, op, "out");
    require(lse, dt, N * s.nh, op, "lse");
    require(dout, dt, N * qw, op, "dout");
    require(dq, dt, N * qw, op, "dq");
    require(dk, dt, N * kw, op, "dk");
    require(dv, dt, N * kw, op, "dv");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::attention_backward(s, q.as<T>(), k.as<T>(), v.as<T>(), mask.as<uint8_t>(), out.as<T>(), lse.as<T>(),
                              dout.as<T>(), dq.as<T>(), dk.as<T>(), dv.as<T>());
    });
  }
  void disentangled_attention(const RelAttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& pos_q, const Tensor& pos_k, const Tensor& rel_index, const Tensor& start,
                              const Tensor& out) override {
    const char* op = "disentangled_attention";
    const DType dt = compute_type(q, op);
    SPPO_CHECK(s.S >= 0 && s.N >= 0 && s.nh > 0 && s.hd > 0 && s.P >= 0 && s.max_len >= 1, op, ": bad shape (S ", s.S,
               ", N ", s.N, ", heads ", s.nh, ", head_dim ", s.hd, ", P ", s.P, ", max_len ", s.max_len, ")");
    const int64_t w = s.nh * s.hd;
    require(q, dt, s.N * w, op, "q");
    require(k, dt, s.N * w, op, "k");
    require(v, dt, s.N * w, op, "v");
    const bool rel = s.c2p || s.p2c;
    if (s.p2c) require(pos_q, dt, s.P * w, op, "pos_q");
    if (s.c2p) require(pos_k, dt, s.P * w, op, "pos_k");
    if (rel) require(rel_index, DType::I32, 2 * s.max_len - 1, op, "rel_index");
    require(start, DType::I32, s.S + 1, op, "start");
    require(out, dt, s.N * w, op, "out");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::disentangled_attention(s, q.as<T>(), k.as<T>(), v.as<T>(), s.p2c ? pos_q.as<T>() : nullptr,
                                  s.c2p ? pos_k.as<T>() : nullptr, rel ? rel_index.as<int32_t>() : nullptr,
                                  start.as<int32_t>(), out.as<T>());
    });
  }
  void kv_write(const Tensor& k, const Tensor& v, const Tensor& slots, int64_t R, int64_t kw, int64_t pool_rows,
                const Tensor& k_pool, const Tensor& v_pool) override {
    const char* op = "kv_write";
    const DType dt = compute_type(k, op);
    require(k, dt, R * kw, op, "k");
    require(v, dt, R * kw, op, "v");
    require(slots, DType::I32, R, op, "slots");
    require(k_pool, dt, pool_rows * kw, op, "k_pool");
    require(v_pool, dt, pool_rows * kw, op, "v_pool");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::kv_write(k.as<T>(), v.as<T>(), slots.as<int32_t>(), R, kw, pool_rows, k_pool.as<T>(), v_pool.as<T>());
    });
  }
  void attention_decode(const PagedShape& s, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                        const Tensor& tables, const Tensor& table_rows, const Tensor& lengths,
                        const Tensor& out) override {
    const char* op = "attention_decode";
    const DType dt = compute_type(q, op);
    const int64_t qw = s.nh * s.hd, kw = s.nkv * s.hd, pool_rows = s.num_blocks * s.block_size;
    require(q, dt, s.R * qw, op, "q");
    require(k_pool, dt, pool_rows * kw, op, "k_pool");
    require(v_pool, dt, pool_rows * kw, op, "v_pool");
    require(table_rows, DType::I32, s.R, op, "table_rows");
    require(lengths, DType::I32, s.R, op, "lengths");
    require(out, dt, s.R * qw, op, "out");
    int64_t rows = 0;
    // In 64 bits: table_rows[r] + 1 in int32 wraps at 2^31 - 1 and would size tables as empty.
    for (int64_t r = 0; r < s.R; ++r) rows = std::max<int64_t>(rows, int64_t{table_rows.as<int32_t>()[r]} + 1);
    require(tables, DType::I32, rows * s.table_stride, op, "tables");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::attention_decode(s, q.as<T>(), k_pool.as<T>(), v_pool.as<T>(), tables.as<int32_t>(),
                            table_rows.as<int32_t>(), lengths.as<int32_t>(), out.as<T>());
    });
  }
  void gather_rows(const Tensor& src, int64_t src_rows, const Tensor& idx, int64_t n, int64_t H,
                   const Tensor& dst) override {
    const char* op = "gather_rows";
    const DType dt = compute_type(src, op);
    require(src, dt, src_rows * H, op, "src");
    require(idx, DType::I32, n, op, "idx");
    require(dst, dt, n * H, op, "dst");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::gather_rows(src.as<T>(), src_rows, idx.as<int32_t>(), n, H, dst.as<T>());
    });
  }
  void scatter_add_rows(const Tensor& src, const Tensor& idx, int64_t n, int64_t H, int64_t dst_rows,
                        const Tensor& dst) override {
    const char* op = "scatter_add_rows";
    const DType dt = compute_type(src, op);
    require(src, dt, n * H, op, "src");
    require(idx, DType::I32, n, op, "idx");
    require(dst, dt, dst_rows * H, op, "dst");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::scatter_add_rows(src.as<T>(), idx.as<int32_t>(), n, H, dst_rows, dst.as<T>());
    });
  }
  void segment_sum(const Tensor& x, const Tensor& seg, int64_t n, int64_t S, const Tensor& out) override {
    const char* op = "segment_sum";
    const DType dt = compute_type(out, op);
    require(x, dt, n, op, "x");
    require(seg, DType::I32, n, op, "seg");
    require(out, dt, S, op, "out");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::segment_sum(x.as<T>(), seg.as<int32_t>(), n, S, out.as<T>());
    });
  }
  void expand_segments(const Tensor& x, const Tensor& seg, int64_t n, int64_t S, double scale,
                       const Tensor& out) override {
    const char* op = "expand_segments";
    const DType dt = compute_type(out, op);
    require(x, dt, S, op, "x");
    require(seg, DType::I32, n, op, "seg");
    require(out, dt, n, op, "out");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::expand_segments(x.as<T>(), seg.as<int32_t>(), n, S, scale, out.as<T>());
    });
  }
  void logprob_forward(const Tensor& logits, int64_t N, int64_t V, const Tensor& labels, const Tensor& token_logp,
                       const Tensor& lse) override {
    const char* op = "logprob_forward";
    require(labels, DType::I32, N, op, "labels");
    if (logits.dtype == DType::F64) {
      require(logits, DType::F64, N * V, op, "logits");
      require(token_logp, DType::F64, N, op, "token_logp");
      if (!lse.empty()) require(lse, DType::F64, N, op, "lse");
      cpu::logprob_forward_f64(logits.as<double>(), N, V, labels.as<int32_t>(), token_logp.as<double>(),
                               lse.as<double>());
      return;
    }
    require(logits, logits.dtype, N * V, op, "logits");
    require(token_logp, DType::F32, N, op, "token_logp");
    if (!lse.empty()) require(lse, DType::F32, N, op, "lse");
    cpu::logprob_forward(logits.data, logits.dtype, N, V, labels.as<int32_t>(), token_logp.as<float>(),
                         lse.as<float>());
  }
  void logprob_backward(const Tensor& logits, int64_t N, int64_t V, const Tensor& labels, const Tensor& grad_token,
                        const Tensor& lse, const Tensor& grad_logits) override {
    const char* op = "logprob_backward";
    require(labels, DType::I32, N, op, "labels");
    if (logits.dtype == DType::F64) {
      require(logits, DType::F64, N * V, op, "logits");
      require(grad_token, DType::F64, N, op, "grad_token");
      if (!lse.empty()) require(lse, DType::F64, N, op, "lse");
      require(grad_logits, DType::F64, N * V, op, "grad_logits");
      cpu::logprob_backward_f64(logits.as<double>(), N, V, labels.as<int32_t>(), grad_token.as<double>(),
                                lse.as<double>(), grad_logits.as<double>());
      return;
    }
    require(logits, logits.dtype, N * V, op, "logits");
    require(grad_token, DType::F32, N, op, "grad_token");
    if (!lse.empty()) require(lse, DType::F32, N, op, "lse");
    require(grad_logits, grad_logits.dtype, N * V, op, "grad_logits");
    cpu::logprob_backward(logits.data, logits.dtype, N, V, labels.as<int32_t>(), grad_token.as<float>(),
                          lse.as<float>(), grad_logits.data, grad_logits.dtype);
  }
  void masked_sequence_sum(const Tensor& token_logp, const Tensor& mask, int64_t B, int64_t T,
                           const Tensor& seq_logp) override {
    const char* op = "masked_sequence_sum";
    require(token_logp, DType::F32, B * T, op, "token_logp");
    require(mask, DType::U8, B * T, op, "mask");
    require(seq_logp, DType::F32, B, op, "seq_logp");
    cpu::masked_sequence_sum(token_logp.as<float>(), mask.as<uint8_t>(), B, T, seq_logp.as<float>());
  }
  void sppo_loss(LossType type, double beta, int64_t B, const LossTensors& in, const LossResultTensors& out) override {
    const char* op = "sppo_loss";
    const DType dt = compute_type(in.policy_chosen, op);
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
    if (!out.summary.empty()) require(out.summary, DType::F64, 5, op, "summary");
    dispatch(dt, [&](auto t) {
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
  void sample_weights(const Tensor& logits, int64_t n, int64_t V, double temperature, const Tensor& w) override {
    const char* op = "sample_weights";
    const DType dt = compute_type(logits, op);
    require(logits, dt, n * V, op, "logits");
    require(w, DType::F32, n * V, op, "w");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::sample_weights(logits.as<T>(), n, V, temperature, w.as<float>());
    });
  }
  void argmax_rows(const Tensor& logits, int64_t n, int64_t V, const Tensor& tokens) override {
    const char* op = "argmax_rows";
    const DType dt = compute_type(logits, op);
    require(logits, dt, n * V, op, "logits");
    require(tokens, DType::I32, n, op, "tokens");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::argmax_rows(logits.as<T>(), n, V, tokens.as<int32_t>());
    });
  }
  void sample_pick(const Tensor& w, int64_t n, int64_t V, int64_t top_k, double top_p, const SampleStream* streams,
                   const Tensor& tokens, const Tensor& logp) override {
    const char* op = "sample_pick";
    require(w, DType::F32, n * V, op, "w");
    require(tokens, DType::I32, n, op, "tokens");
    require(logp, DType::F32, n, op, "logp");
    SPPO_CHECK(n == 0 || streams != nullptr, op, ": streams is null");
    cpu::sample_pick(w.as<float>(), n, V, top_k, top_p, streams, tokens.as<int32_t>(), logp.as<float>());
  }
  void sum_squares(const Tensor& g, int64_t n, const Tensor& acc) override {
    const char* op = "sum_squares";
    const DType dt = compute_type(g, op);
    require(g, dt, n, op, "g");
    require(acc, DType::F64, 1, op, "acc");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::sum_squares(g.as<T>(), n, acc.as<double>());
    });
  }
  void rmsprop_step(const Tensor& p, const Tensor& g, const Tensor& v, int64_t n, const RmspropParams& h,
                    const Tensor& sum_squares, double max_norm) override {
    const char* op = "rmsprop_step";
    const DType dt = compute_type(p, op);
    require(p, dt, n, op, "p");
    require(g, dt, n, op, "g");
    require(v, dt, n, op, "v");
    require(sum_squares, DType::F64, 1, op, "sum_squares");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::rmsprop_step(p.as<T>(), g.as<T>(), v.as<T>(), n, h, sum_squares.as<double>(), max_norm);
    });
  }
  void adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, int64_t n, const AdamwParams& h,
                  const Tensor& sum_squares, double max_norm) override {
    const char* op = "adamw_step";
    const DType dt = compute_type(p, op);
    require(p, dt, n, op, "p");
    require(g, dt, n, op, "g");
    require(m, dt, n, op, "m");
    require(v, dt, n, op, "v");
    require(sum_squares, DType::F64, 1, op, "sum_squares");
    dispatch(dt, [&](auto t) {
      using T = decltype(t);
      cpu::adamw_step(p.as<T>(), g.as<T>(), m.as<T>(), v.as<T>(), n, h, sum_squares.as<double>(), max_norm);
    });
  }

 private:
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
