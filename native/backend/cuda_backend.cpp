// CudaBackend (backend/cuda_backend.h).
#ifdef SPPO_WITH_CUDA
#include "backend/cuda_backend.h"

#include <cuda_runtime.h>

#include <memory>
#include <mutex>
#include <string>

#include "backend/buffer.h"
#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/attention_decode.h"
#include "kernels/bias_act.h"
#include "kernels/disentangled_attention.h"
#include "kernels/embedding.h"
#include "kernels/global_norm.h"
#include "core/device.h"
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
#include "runtime/cuda_check.h"
#include "runtime/cuda_launch.h"
#include "runtime/device_errors.h"

namespace sppo {
namespace {

using cuda::check_cuda;

// The element type an op computes over on CUDA: F32 (the parity mode) or BF16 (activations and
// weights of the bf16 mode; statistics, gradients and optimizer state stay F32).
DType compute_type(const Tensor& t, const char* op) {
  SPPO_CHECK(t.dtype == DType::F32 || t.dtype == DType::BF16, op, ": the CUDA backend computes in F32 or BF16 (got ",
             dtype_name(t.dtype), ")");
  return t.dtype;
}

// Ops whose tensors are statistics, gradients or optimizer state: F32 only on CUDA.
DType f32_only(const Tensor& t, const char* op) {
  SPPO_CHECK(t.dtype == DType::F32, op, ": the CUDA backend computes in F32 (got ", dtype_name(t.dtype), ")");
  return t.dtype;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    bind_thread_to_device();  // the stream belongs to this process's device (select_cuda_device)
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    // Kernels take their scratch from the stream-ordered pool (kernels/cuda/host_helpers.h): keep
    // freed blocks in the pool across synchronisations instead of returning them to the driver
    // each step (the pool holds at most the largest scratch of a step, a few MB).
    int dev = 0;
    cudaMemPool_t pool = nullptr;
    if (cudaGetDevice(&dev) == cudaSuccess && cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess) {
      uint64_t keep = ~uint64_t{0};
      cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    }
    cudaGetLastError();  // a device without pools fails later, at the first scratch, with a message
    errors_ = std::make_unique<cuda::DeviceErrors>(stream_);
    matmul_ = std::make_unique<cuda::Matmul>(stream_);
  }
  ~CudaBackend() override {
    matmul_.reset();
    errors_.reset();
    if (comm_) cudaStreamDestroy(comm_);
    if (compute_done_) cudaEventDestroy(compute_done_);
    if (comm_done_) cudaEventDestroy(comm_done_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  Device device() const override { return Device::CUDA; }
  const char* name() const override { return "cuda"; }
  bool host_accessible() const override { return false; }

  void* allocate(std::size_t bytes) override {
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();
      fail("out of device memory: could not allocate ", format_bytes(static_cast<double>(bytes)), " (",
           format_bytes(static_cast<double>(available_memory())), " free): ", cudaGetErrorString(e));
    }
    return p;
  }
  void deallocate(void* p) noexcept override {
    // Work queued on the stream may still read p.
    cudaStreamSynchronize(stream_);
    cudaFree(p);
  }
  std::size_t available_memory() const override {
    std::size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return free;
  }
  void upload(void* dst, const void* src, std::size_t bytes) override {
    // From pageable memory the copy is staged before it returns, so src may be reused at once.
    if (bytes) check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "upload");
  }
  void download(void* dst, const void* src, std::size_t bytes) override {
    if (bytes) check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "download");
    check_cuda(cudaStreamSynchronize(stream_), "download");
  }
  void copy(void* dst, const void* src, std::size_t bytes) override {
    if (bytes) check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "device copy");
  }
  void zero(void* dst, std::size_t bytes) override {
    if (bytes) check_cuda(cudaMemsetAsync(dst, 0, bytes, stream_), "memset");
  }
  void synchronize() override { errors_->check(); }
  void* native_stream() const override { return stream_; }

  void* comm_stream() override {
    std::lock_guard<std::mutex> lock(comm_mu_);
    if (!comm_) {
      check_cuda(cudaStreamCreateWithFlags(&comm_, cudaStreamNonBlocking), "cudaStreamCreate (communication)");
      check_cuda(cudaEventCreateWithFlags(&compute_done_, cudaEventDisableTiming), "cudaEventCreate");
      check_cuda(cudaEventCreateWithFlags(&comm_done_, cudaEventDisableTiming), "cudaEventCreate");
    }
    return comm_;
  }
  void comm_after_compute() override {
    cudaStream_t c = static_cast<cudaStream_t>(comm_stream());
    check_cuda(cudaEventRecord(compute_done_, stream_), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(c, compute_done_, 0), "cudaStreamWaitEvent");
  }
  void compute_after_comm() override {
    cudaStream_t c = static_cast<cudaStream_t>(comm_stream());
    check_cuda(cudaEventRecord(comm_done_, c), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(stream_, comm_done_, 0), "cudaStreamWaitEvent");
  }
  bool comm_idle() override {
    if (!comm_) return true;
    bind_thread_to_device();  // called from a communicator's watchdog thread too
    const cudaError_t e = cudaStreamQuery(comm_);
    if (e == cudaErrorNotReady) return false;
    check_cuda(e, "cudaStreamQuery (communication)");
    return true;
  }

  // Each op checks what the CPU backend checks, with its messages (backend.h), then queues its
  // kernel; bad values found on the device come back at synchronize().
  void embedding_forward(const Tensor& table, int64_t V, int64_t H, const Tensor& ids, int64_t n,
                         const Tensor& out) override {
    const char* op = "embedding_forward";
    const DType dt = compute_type(table, op);
    require(table, dt, V * H, op, "table");
    require(ids, DType::I32, n, op, "ids");
    require(out, dt, n * H, op, "out");
    cuda::embedding_forward(table.data, dt, V, H, ids.as<int32_t>(), n, out.data, launch());
  }
  void embedding_backward(const Tensor& dout, const Tensor& ids, int64_t n, int64_t V, int64_t H,
                          const Tensor& dtable) override {
    const char* op = "embedding_backward";
    const DType dt = compute_type(dout, op);  // the gradient arena (dtable) is F32
    require(dout, dt, n * H, op, "dout");
    require(ids, DType::I32, n, op, "ids");
    require(dtable, DType::F32, V * H, op, "dtable");
    cuda::embedding_backward(dout.data, dt, ids.as<int32_t>(), n, V, H, dtable.as<float>(), launch());
  }
  void matmul(const Tensor& A, const Tensor& B, const Tensor& C, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
              bool accumulate) override {
    const char* op = "matmul";
    const DType in = compute_type(A, op);
    require(A, in, M * K, op, "A");
    require(B, in, K * N, op, "B");
    // bf16 products may write fp32 (the gradients of the bf16 mode); fp32 ones write fp32.
    if (in == DType::BF16)
      SPPO_CHECK(C.dtype == DType::F32 || C.dtype == DType::BF16, op, ": C must be F32 or BF16 (got ",
                 dtype_name(C.dtype), ")");
    require(C, in == DType::BF16 ? C.dtype : DType::F32, M * N, op, "C");
    matmul_->run(A.data, B.data, C.data, in, C.dtype, M, N, K, ta, tb, accumulate);
  }
  void rmsnorm_forward(const Tensor& x, const Tensor& w, int64_t n, int64_t H, double eps, const Tensor& y,
                       const Tensor& rstd) override {
    const char* op = "rmsnorm_forward";
    const DType dt = compute_type(x, op);
    require(x, dt, n * H, op, "x");
    require(w, dt, H, op, "w");
    require(y, dt, n * H, op, "y");
    require(rstd, DType::F32, n, op, "rstd");
    cuda::rmsnorm_forward(x.data, w.data, dt, n, H, eps, y.data, rstd.as<float>(), launch());
  }
  void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, int64_t n, int64_t H,
                        const Tensor& dx, const Tensor& dw, bool accumulate_dx) override {
    const char* op = "rmsnorm_backward";
    const DType dt = compute_type(x, op);
    require(x, dt, n * H, op, "x");
    require(w, dt, H, op, "w");
    require(rstd, DType::F32, n, op, "rstd");
    require(dy, dt, n * H, op, "dy");
    require(dx, dt, n * H, op, "dx");
    require(dw, DType::F32, H, op, "dw");
    cuda::rmsnorm_backward(x.data, w.data, rstd.as<float>(), dy.data, dt, n, H, dx.data, dw.as<float>(), accumulate_dx,
                           launch());
  }
  void layernorm_forward(const Tensor& x, const Tensor& w, const Tensor& b, int64_t n, int64_t H, double eps,
                         const Tensor& y) override {
    const char* op = "layernorm_forward";
    const DType dt = compute_type(x, op);
    SPPO_CHECK(n >= 0 && H > 0, op, ": bad shape (n ", n, ", H ", H, ")");
    SPPO_CHECK(eps >= 0, op, ": eps must be >= 0 (got ", eps, ")");
    require(x, dt, n * H, op, "x");
    require(w, dt, H, op, "w");
    require(b, dt, H, op, "b");
    require(y, dt, n * H, op, "y");
    cuda::layernorm_forward(x.data, w.data, b.data, dt, n, H, eps, y.data, launch());
  }
  void bias_act(const Tensor& x, const Tensor& b, int64_t n, int64_t H, Activation act, const Tensor& y) override {
    const char* op = "bias_act";
    const DType dt = compute_type(x, op);
    SPPO_CHECK(n >= 0 && H > 0, op, ": bad shape (n ", n, ", H ", H, ")");
    SPPO_CHECK(act == Activation::Identity || act == Activation::Gelu || act == Activation::Tanh, op,
               ": unknown activation ", static_cast<int>(act));
    require(x, dt, n * H, op, "x");
    if (!b.empty()) require(b, dt, H, op, "b");
    require(y, dt, n * H, op, "y");
    cuda::bias_act(x.data, b.empty() ? nullptr : b.data, dt, n, H, act, y.data, launch());
  }
  void rope_tables(const Tensor& inv_freq, int64_t half, const Tensor& positions, int64_t n, const Tensor& cos,
                   const Tensor& sin) override {
    const char* op = "rope_tables";
    const DType dt = compute_type(cos, op);
    require(inv_freq, DType::F32, half, op, "inv_freq");
    require(positions, DType::I32, n, op, "positions");
    require(cos, dt, n * half, op, "cos");
    require(sin, dt, n * half, op, "sin");
    cuda::rope_tables(inv_freq.as<float>(), half, positions.as<int32_t>(), n, dt, cos.data, sin.data, launch());
  }
  void rope_apply(const Tensor& x, int64_t n, int64_t heads, int64_t head_dim, const Tensor& cos, const Tensor& sin,
                  bool inverse) override {
    const char* op = "rope_apply";
    const DType dt = compute_type(x, op);
    SPPO_CHECK(head_dim % 2 == 0, op, ": head_dim must be even (got ", head_dim, ")");
    require(x, dt, n * (heads * head_dim), op, "x");
    require(cos, dt, n * (head_dim / 2), op, "cos");
    require(sin, dt, n * (head_dim / 2), op, "sin");
    cuda::rope_apply(x.data, dt, n, heads, head_dim, cos.data, sin.data, inverse, launch());
  }
  void swiglu_forward(const Tensor& gate, const Tensor& up, int64_t count, const Tensor& act) override {
    const char* op = "swiglu_forward";
    const DType dt = compute_type(gate, op);
    require(gate, dt, count, op, "gate");
    require(up, dt, count, op, "up");
    require(act, dt, count, op, "act");
    cuda::swiglu_forward(gate.data, up.data, dt, count, act.data, launch());
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
    cuda::swiglu_backward(gate.data, up.data, dact.data, dt, count, dgate.data, dup.data, launch());
  }
  // The CPU backend's shape check (cpu_backend.cpp), with its message.
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
    require(lse, DType::F32, N * s.nh, op, "lse");  // a statistic: F32 in the bf16 mode too
    cuda::attention_forward(s, q.data, k.data, v.data, dt, mask.as<uint8_t>(), out.data, lse.as<float>(), launch());
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
    require(lse, DType::F32, N * s.nh, op, "lse");
    require(dout, dt, N * qw, op, "dout");
    require(dq, dt, N * qw, op, "dq");
    require(dk, dt, N * kw, op, "dk");
    require(dv, dt, N * kw, op, "dv");
    cuda::attention_backward(s, q.data, k.data, v.data, dt, mask.as<uint8_t>(), out.data, lse.as<float>(), dout.data,
                             dq.data, dk.data, dv.data, launch());
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
    cuda::disentangled_attention(s, dt, q.data, k.data, v.data, s.p2c ? pos_q.data : nullptr,
                                 s.c2p ? pos_k.data : nullptr, rel ? rel_index.as<int32_t>() : nullptr,
                                 start.as<int32_t>(), out.data, launch());
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
    cuda::kv_write(k.data, v.data, dt, slots.as<int32_t>(), R, kw, pool_rows, k_pool.data, v_pool.data, launch());
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
    // The CPU sizes tables by the largest table row, which lives on the device here: its type is
    // checked now, its size by the kernel (deferred, with the CPU's message).
    require(tables, DType::I32, 0, op, "tables");
    cuda::attention_decode(s, q.data, k_pool.data, v_pool.data, dt, tables.as<int32_t>(), tables.numel,
                           table_rows.as<int32_t>(), lengths.as<int32_t>(), out.data, launch());
  }
  void gather_rows(const Tensor& src, int64_t src_rows, const Tensor& idx, int64_t n, int64_t H,
                   const Tensor& dst) override {
    const char* op = "gather_rows";
    const DType dt = compute_type(src, op);
    require(src, dt, src_rows * H, op, "src");
    require(idx, DType::I32, n, op, "idx");
    require(dst, dt, n * H, op, "dst");
    cuda::gather_rows(src.data, src_rows, idx.as<int32_t>(), n, H, dt, dst.data, launch());
  }
  void scatter_add_rows(const Tensor& src, const Tensor& idx, int64_t n, int64_t H, int64_t dst_rows,
                        const Tensor& dst) override {
    const char* op = "scatter_add_rows";
    const DType dt = compute_type(src, op);
    require(src, dt, n * H, op, "src");
    require(idx, DType::I32, n, op, "idx");
    require(dst, dt, dst_rows * H, op, "dst");
    cuda::scatter_add_rows(src.data, idx.as<int32_t>(), n, H, dst_rows, dt, dst.data, launch());
  }
  void segment_sum(const Tensor& x, const Tensor& seg, int64_t n, int64_t S, const Tensor& out) override {
    const char* op = "segment_sum";
    const DType dt = f32_only(out, op);
    require(x, dt, n, op, "x");
    require(seg, DType::I32, n, op, "seg");
    require(out, dt, S, op, "out");
    cuda::segment_sum(x.as<float>(), seg.as<int32_t>(), n, S, out.as<float>(), launch());
  }
  void expand_segments(const Tensor& x, const Tensor& seg, int64_t n, int64_t S, double scale,
                       const Tensor& out) override {
    const char* op = "expand_segments";
    const DType dt = f32_only(out, op);
    require(x, dt, S, op, "x");
    require(seg, DType::I32, n, op, "seg");
    require(out, dt, n, op, "out");
    cuda::expand_segments(x.as<float>(), seg.as<int32_t>(), n, S, scale, out.as<float>(), launch());
  }
  void sample_weights(const Tensor& logits, int64_t n, int64_t V, double temperature, const Tensor& w) override {
    const char* op = "sample_weights";
    const DType dt = compute_type(logits, op);
    require(logits, dt, n * V, op, "logits");
    require(w, DType::F32, n * V, op, "w");
    cuda::sample_weights(logits.data, dt, n, V, temperature, w.as<float>(), launch());
  }
  void argmax_rows(const Tensor& logits, int64_t n, int64_t V, const Tensor& tokens) override {
    const char* op = "argmax_rows";
    const DType dt = compute_type(logits, op);
    require(logits, dt, n * V, op, "logits");
    require(tokens, DType::I32, n, op, "tokens");
    cuda::argmax_rows(logits.data, dt, n, V, tokens.as<int32_t>(), launch());
  }
  void sample_pick(const Tensor& w, int64_t n, int64_t V, int64_t top_k, double top_p, const SampleStream* streams,
                   const Tensor& tokens, const Tensor& logp) override {
    const char* op = "sample_pick";
    require(w, DType::F32, n * V, op, "w");
    require(tokens, DType::I32, n, op, "tokens");
    require(logp, DType::F32, n, op, "logp");
    SPPO_CHECK(n == 0 || streams != nullptr, op, ": streams is null");
    cuda::sample_pick(w.as<float>(), n, V, top_k, top_p, streams, tokens.as<int32_t>(), logp.as<float>(), launch());
  }
  void sum_squares(const Tensor& g, int64_t n, const Tensor& acc) override {
    const char* op = "sum_squares";
    const DType dt = f32_only(g, op);
    require(g, dt, n, op, "g");
    require(acc, DType::F64, 1, op, "acc");
    cuda::sum_squares(g.as<float>(), n, acc.as<double>(), launch());
  }
  void rmsprop_step(const Tensor& p, const Tensor& g, const Tensor& v, int64_t n, const RmspropParams& h,
                    const Tensor& sum_squares, double max_norm) override {
    const char* op = "rmsprop_step";
    const DType dt = f32_only(p, op);
    require(p, dt, n, op, "p");
    require(g, dt, n, op, "g");
    require(v, dt, n, op, "v");
    require(sum_squares, DType::F64, 1, op, "sum_squares");
    cuda::rmsprop_step(p.as<float>(), g.as<float>(), v.as<float>(), n, h, sum_squares.as<double>(), max_norm, launch());
  }
  void adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, int64_t n, const AdamwParams& h,
                  const Tensor& sum_squares, double max_norm) override {
    const char* op = "adamw_step";
    const DType dt = f32_only(p, op);
    require(p, dt, n, op, "p");
    require(g, dt, n, op, "g");
    require(m, dt, n, op, "m");
    require(v, dt, n, op, "v");
    require(sum_squares, DType::F64, 1, op, "sum_squares");
    cuda::adamw_step(p.as<float>(), g.as<float>(), m.as<float>(), v.as<float>(), n, h, sum_squares.as<double>(),
                     max_norm, launch());
  }

  void logprob_forward(const Tensor& logits, int64_t N, int64_t V, const Tensor& labels, const Tensor& token_logp,
                       const Tensor& lse) override {
    const char* op = "logprob_forward";
    require(logits, logits.dtype, N * V, op, "logits");
    require(labels, DType::I32, N, op, "labels");
    require(token_logp, DType::F32, N, op, "token_logp");
    if (!lse.empty()) require(lse, DType::F32, N, op, "lse");
    cuda::logprob_forward(logits.data, logits.dtype, N, V, labels.as<int32_t>(), token_logp.as<float>(),
                          lse.as<float>(), launch());
  }
  void logprob_backward(const Tensor& logits, int64_t N, int64_t V, const Tensor& labels, const Tensor& grad_token,
                        const Tensor& lse, const Tensor& grad_logits) override {
    const char* op = "logprob_backward";
    require(logits, logits.dtype, N * V, op, "logits");
    require(labels, DType::I32, N, op, "labels");
    require(grad_token, DType::F32, N, op, "grad_token");
    if (!lse.empty()) require(lse, DType::F32, N, op, "lse");
    require(grad_logits, grad_logits.dtype, N * V, op, "grad_logits");
    cuda::logprob_backward(logits.data, logits.dtype, N, V, labels.as<int32_t>(), grad_token.as<float>(),
                           lse.as<float>(), grad_logits.data, grad_logits.dtype, launch());
  }
  void masked_sequence_sum(const Tensor& token_logp, const Tensor& mask, int64_t B, int64_t T,
                           const Tensor& seq_logp) override {
    const char* op = "masked_sequence_sum";
    require(token_logp, DType::F32, B * T, op, "token_logp");
    require(mask, DType::U8, B * T, op, "mask");
    require(seq_logp, DType::F32, B, op, "seq_logp");
    cuda::masked_sequence_sum(token_logp.as<float>(), mask.as<uint8_t>(), B, T, seq_logp.as<float>(), launch());
  }
  void sppo_loss(LossType type, double beta, int64_t B, const LossTensors& in, const LossResultTensors& out) override {
    const char* op = "sppo_loss";
    auto opt = [&](const Tensor& t, const char* arg) {
      if (!t.empty()) require(t, DType::F32, B, op, arg);
    };
    require(in.policy_chosen, DType::F32, B, op, "policy_chosen");
    require(in.policy_rejected, DType::F32, B, op, "policy_rejected");
    require(in.ref_chosen, DType::F32, B, op, "ref_chosen");
    require(in.ref_rejected, DType::F32, B, op, "ref_rejected");
    for (auto* t : {&in.chosen_probs, &in.chosen_probs_win, &in.chosen_probs_lose}) opt(*t, "a probability column");
    for (auto* t : {&out.losses, &out.grad_chosen, &out.grad_rejected, &out.rewards_chosen, &out.rewards_rejected})
      opt(*t, "an output column");
    require(out.summary, DType::F64, 5, op, "summary");
    LossInputs li;
    li.B = B;
    li.policy_chosen = in.policy_chosen.as<float>();
    li.policy_rejected = in.policy_rejected.as<float>();
    li.ref_chosen = in.ref_chosen.as<float>();
    li.ref_rejected = in.ref_rejected.as<float>();
    li.chosen_probs = in.chosen_probs.as<float>();
    li.chosen_probs_win = in.chosen_probs_win.as<float>();
    li.chosen_probs_lose = in.chosen_probs_lose.as<float>();
    li.beta = beta;
    li.type = type;
    LossOutputs lo;
    lo.losses = out.losses.as<float>();
    lo.grad_chosen = out.grad_chosen.as<float>();
    lo.grad_rejected = out.grad_rejected.as<float>();
    lo.rewards_chosen = out.rewards_chosen.as<float>();
    lo.rewards_rejected = out.rewards_rejected.as<float>();
    lo.summary = out.summary.as<double>();
    lo.grad_scale = out.grad_scale;
    cuda::sppo_loss(li, lo, launch());
  }

 private:
  cuda::Launch launch() { return cuda::Launch{stream_, errors_.get()}; }

  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::DeviceErrors> errors_;
  std::unique_ptr<cuda::Matmul> matmul_;
  std::mutex comm_mu_;
  cudaStream_t comm_ = nullptr;
  cudaEvent_t compute_done_ = nullptr, comm_done_ = nullptr;
};

}  // namespace

std::shared_ptr<Backend> make_cuda_backend() { return std::make_shared<CudaBackend>(); }

}  // namespace sppo
#endif
