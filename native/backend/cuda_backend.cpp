// CudaBackend (backend/cuda_backend.h).
#ifdef SPPO_WITH_CUDA
#include "backend/cuda_backend.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend/buffer.h"
#include "backend/op_checks.h"
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
#include "runtime/cuda_graph.h"
#include "runtime/cuda_launch.h"
#include "runtime/device_errors.h"

namespace sppo {
namespace {

using cuda::check_cuda;

// SPPO_CUDA_GRAPHS: "0" turns capture off (steps run eagerly, at the same shapes);
// "test-fail-capture" (tests) queues an uncapturable call inside every capture, so that the
// fallback to eager launches is exercised on a real device. Read at each step: a test may flip it.
enum class GraphMode { On, Off, FailCapture };
GraphMode graph_mode() {
  const char* e = std::getenv("SPPO_CUDA_GRAPHS");
  if (e && std::strcmp(e, "0") == 0) return GraphMode::Off;
  if (e && std::strcmp(e, "test-fail-capture") == 0) return GraphMode::FailCapture;
  return GraphMode::On;
}

// One message per process and kind: a fallback is harmless (eager launches, same results) but
// should be seen once, not every step.
void note_once(std::once_flag& flag, const std::string& msg) {
  std::call_once(flag, [&]() { std::fprintf(stderr, "sppo: %s\n", msg.c_str()); });
}
std::once_flag capture_failed_note, replay_differs_note;

// A run_step slot: a graph that replays, or eager for good.
struct CudaStepCapture final : Backend::StepCapture {
  bool eager = false;
  cuda::Graph graph;
  std::vector<cuda::DeviceErrors::Explain> explain;  // the captured launches', ids 0..
  bool replays() const override { return !eager && graph.ready(); }
};

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    bind_thread_to_device();  // the stream belongs to this process's device (select_cuda_device)
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    // Kernels take their scratch from the stream-ordered pool (kernels/cuda/host_helpers.h): keep
    // freed blocks in the pool across synchronisations instead of returning them to the driver
    // each step (the pool holds the largest scratch of a step: up to a few hundred MB for split
    // decode attention). What it holds is counted as available, and given back when a cudaMalloc
    // would fail (allocate).
    int dev = 0;
    cudaMemPool_t pool = nullptr;
    if (cudaGetDevice(&dev) == cudaSuccess && cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess) {
      uint64_t keep = ~uint64_t{0};
      if (cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep) == cudaSuccess) pool_ = pool;
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
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
      // The scratch pool's idle bytes, and what graphs no longer alive allocated (a finished
      // rollout's decode steps), are not cudaMalloc's: once the stream has finished with them,
      // give them back and try again.
      cudaGetLastError();
      int dev = 0;
      if (cudaStreamSynchronize(stream_) == cudaSuccess) {
        if (pool_) cudaMemPoolTrimTo(pool_, 0);
        if (cudaGetDevice(&dev) == cudaSuccess) cudaDeviceGraphMemTrim(dev);
        cudaGetLastError();
        e = cudaMalloc(&p, bytes);
      }
    }
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      fail("out of device memory: could not allocate ", format_bytes(static_cast<double>(bytes)), " (",
           format_bytes(static_cast<double>(available_memory())), " free): ", cudaGetErrorString(e));
    }
    check_cuda(e, "cudaMalloc");  // anything else (a broken context) as what it is
    return p;
  }
  void deallocate(void* p) noexcept override {
    // Work queued on the stream may still read p. Failures here (a broken context) are left for
    // the next checked call, which reports them; a non-sticky one is cleared.
    if (cudaStreamSynchronize(stream_) != cudaSuccess) cudaGetLastError();
    if (cudaFree(p) != cudaSuccess) cudaGetLastError();
  }
  // Free device memory, with what the scratch pool holds but does not use (allocate takes it back).
  std::size_t available_memory() const override {
    std::size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    uint64_t reserved = 0, used = 0;
    if (pool_ && cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemCurrent, &reserved) == cudaSuccess &&
        cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrUsedMemCurrent, &used) == cudaSuccess && reserved > used)
      free += static_cast<std::size_t>(reserved - used);
    cudaGetLastError();
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

  bool captures_steps() const override { return true; }
  void run_step(std::unique_ptr<StepCapture>& slot, const std::function<void()>& step, const Tensor& output,
                const char* what) override {
    const GraphMode mode = graph_mode();
    auto* have = dynamic_cast<CudaStepCapture*>(slot.get());
    if (mode == GraphMode::Off || (have && have->eager)) return step();
    if (have) return replay(*have);
    // First call: the eager result is the one kept; the graph must then reproduce it bit for bit.
    step();
    synchronize();  // its device errors, as any eager step's (no explainers pending after)
    std::vector<unsigned char> want(output.bytes()), got(output.bytes());
    download(want.data(), output.data, output.bytes());
    auto made = std::make_unique<CudaStepCapture>();
    std::string why = made->graph.capture(stream_, [&]() {
      if (mode == GraphMode::FailCapture) check_cuda(cudaStreamSynchronize(stream_), "a synchronisation (forced)");
      step();
    });
    made->explain = errors_->take_from(0);
    if (!why.empty()) {
      note_once(capture_failed_note, std::string("CUDA graph capture of the ") + what + " failed (" + why +
                                         "); that step runs with eager launches (same results)");
      made->eager = true;
      slot = std::move(made);
      return;
    }
    bool same = false;
    try {
      replay(*made);
      download(got.data(), output.data, output.bytes());
      synchronize();  // a device error the eager step did not report: the graph is wrong
      same = std::memcmp(want.data(), got.data(), want.size()) == 0;
    } catch (const std::exception& e) {
      // A fault (an illegal address: the context is broken for good) is not a wrong graph, and
      // no eager step could follow it: raise it as it is.
      if (cuda::context_broken()) throw;
      why = e.what();
    }
    if (!same) {
      note_once(replay_differs_note, std::string("the CUDA graph of the ") + what +
                                         (why.empty() ? " replayed different bits from its eager launches"
                                                      : " failed on replay (" + why + ")") +
                                         "; that step runs with eager launches from now on");
      made->eager = true;
      slot = std::move(made);
      step();  // the eager bytes again: nothing the graph wrote survives
      return;
    }
    slot = std::move(made);
  }

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
    if (e == cudaErrorNotReady) {
      cudaGetLastError();  // the runtime records "not ready" as this thread's last error: not one
      return false;
    }
    check_cuda(e, "cudaStreamQuery (communication)");
    return true;
  }

  // Each op checks its arguments with the CPU backend's checks and messages (backend/op_checks.h,
  // with cuda_op_rules()), then queues its kernel; bad values found on the device come back at
  // synchronize().
  void embedding_forward(const Tensor& table, int64_t V, int64_t H, const Tensor& ids, int64_t n,
                         const Tensor& out) override {
    const DType dt = check_embedding_forward(table, V, H, ids, n, out, rules_);
    cuda::embedding_forward(table.data, dt, V, H, ids.as<int32_t>(), n, out.data, launch());
  }
  void embedding_backward(const Tensor& dout, const Tensor& ids, int64_t n, int64_t V, int64_t H,
                          const Tensor& dtable) override {
    const DType dt = check_embedding_backward(dout, ids, n, V, H, dtable, rules_);  // dtable: F32 or BF16
    cuda::embedding_backward(dout.data, dt, ids.as<int32_t>(), n, V, H, dtable.data, dtable.dtype, launch());
  }
  void matmul(const Tensor& A, const Tensor& B, const Tensor& C, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
              bool accumulate) override {
    const DType in = check_matmul(A, B, C, M, N, K, rules_);
    matmul_->run(A.data, B.data, C.data, in, C.dtype, M, N, K, ta, tb, accumulate);
  }
  void rmsnorm_forward(const Tensor& x, const Tensor& w, int64_t n, int64_t H, double eps, const Tensor& y,
                       const Tensor& rstd) override {
    const DType dt = check_rmsnorm_forward(x, w, n, H, y, rstd, rules_);
    cuda::rmsnorm_forward(x.data, w.data, dt, n, H, eps, y.data, rstd.as<float>(), launch());
  }
  void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, int64_t n, int64_t H,
                        const Tensor& dx, const Tensor& dw, bool accumulate_dx) override {
    const DType dt = check_rmsnorm_backward(x, w, rstd, dy, n, H, dx, dw, rules_);
    cuda::rmsnorm_backward(x.data, w.data, rstd.as<float>(), dy.data, dt, n, H, dx.data, dw.data, dw.dtype,
                           accumulate_dx, launch());
  }
  void layernorm_forward(const Tensor& x, const Tensor& w, const Tensor& b, int64_t n, int64_t H, double eps,
                         const Tensor& y) override {
    const DType dt = check_layernorm_forward(x, w, b, n, H, eps, y, rules_);
    cuda::layernorm_forward(x.data, w.data, b.data, dt, n, H, eps, y.data, launch());
  }
  void bias_act(const Tensor& x, const Tensor& b, int64_t n, int64_t H, Activation act, const Tensor& y) override {
    const DType dt = check_bias_act(x, b, n, H, act, y, rules_);
    cuda::bias_act(x.data, b.empty() ? nullptr : b.data, dt, n, H, act, y.data, launch());
  }
  void rope_tables(const Tensor& inv_freq, int64_t half, const Tensor& positions, int64_t n, const Tensor& cos,
                   const Tensor& sin) override {
    const DType dt = check_rope_tables(inv_freq, half, positions, n, cos, sin, rules_);
    cuda::rope_tables(inv_freq.as<float>(), half, positions.as<int32_t>(), n, dt, cos.data, sin.data, launch());
  }
  void rope_apply(const Tensor& x, int64_t n, int64_t heads, int64_t head_dim, const Tensor& cos, const Tensor& sin,
                  bool inverse) override {
    const DType dt = check_rope_apply(x, n, heads, head_dim, cos, sin, rules_);
    cuda::rope_apply(x.data, dt, n, heads, head_dim, cos.data, sin.data, inverse, launch());
  }
  void swiglu_forward(const Tensor& gate, const Tensor& up, int64_t count, const Tensor& act) override {
    const DType dt = check_swiglu_forward(gate, up, count, act, rules_);
    cuda::swiglu_forward(gate.data, up.data, dt, count, act.data, launch());
  }
  void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dact, int64_t count, const Tensor& dgate,
                       const Tensor& dup) override {
    const DType dt = check_swiglu_backward(gate, up, dact, count, dgate, dup, rules_);
    cuda::swiglu_backward(gate.data, up.data, dact.data, dt, count, dgate.data, dup.data, launch());
  }
  void attention_forward(const AttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                         const Tensor& out, const Tensor& lse) override {
    const DType dt = check_attention_forward(s, q, k, v, mask, out, lse, rules_);  // lse: F32
    cuda::attention_forward(s, q.data, k.data, v.data, dt, mask.as<uint8_t>(), out.data, lse.as<float>(), launch());
  }
  void attention_backward(const AttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                          const Tensor& out, const Tensor& lse, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                          const Tensor& dv) override {
    const DType dt = check_attention_backward(s, q, k, v, mask, out, lse, dout, dq, dk, dv, rules_);
    cuda::attention_backward(s, q.data, k.data, v.data, dt, mask.as<uint8_t>(), out.data, lse.as<float>(), dout.data,
                             dq.data, dk.data, dv.data, launch());
  }
  void disentangled_attention(const RelAttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& pos_q, const Tensor& pos_k, const Tensor& rel_index, const Tensor& start,
                              const Tensor& out) override {
    const DType dt = check_disentangled_attention(s, q, k, v, pos_q, pos_k, rel_index, start, out, rules_);
    const bool rel = s.c2p || s.p2c;
    cuda::disentangled_attention(s, dt, q.data, k.data, v.data, s.p2c ? pos_q.data : nullptr,
                                 s.c2p ? pos_k.data : nullptr, rel ? rel_index.as<int32_t>() : nullptr,
                                 start.as<int32_t>(), out.data, launch());
  }
  void kv_write(const Tensor& k, const Tensor& v, const Tensor& slots, int64_t R, int64_t kw, int64_t pool_rows,
                const Tensor& k_pool, const Tensor& v_pool) override {
    const DType dt = check_kv_write(k, v, slots, R, kw, pool_rows, k_pool, v_pool, rules_);
    cuda::kv_write(k.data, v.data, dt, slots.as<int32_t>(), R, kw, pool_rows, k_pool.data, v_pool.data, launch());
  }
  void attention_decode(const PagedShape& s, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                        const Tensor& tables, const Tensor& table_rows, const Tensor& lengths,
                        const Tensor& out) override {
    // tables' size is checked by the kernel (OpRules::host_memory).
    const DType dt = check_attention_decode(s, q, k_pool, v_pool, tables, table_rows, lengths, out, rules_);
    cuda::attention_decode(s, q.data, k_pool.data, v_pool.data, dt, tables.as<int32_t>(), tables.numel,
                           table_rows.as<int32_t>(), lengths.as<int32_t>(), out.data, launch());
  }
  void gather_rows(const Tensor& src, int64_t src_rows, const Tensor& idx, int64_t n, int64_t H,
                   const Tensor& dst) override {
    const DType dt = check_gather_rows(src, src_rows, idx, n, H, dst, rules_);
    cuda::gather_rows(src.data, src_rows, idx.as<int32_t>(), n, H, dt, dst.data, launch());
  }
  void scatter_add_rows(const Tensor& src, const Tensor& idx, int64_t n, int64_t H, int64_t dst_rows,
                        const Tensor& dst) override {
    const DType dt = check_scatter_add_rows(src, idx, n, H, dst_rows, dst, rules_);
    cuda::scatter_add_rows(src.data, idx.as<int32_t>(), n, H, dst_rows, dt, dst.data, launch());
  }
  // The segment sums are F32 only (OpRules::state); the sum of squares and the optimizer steps keep
  // F32 state and read F32 or BF16 gradients (op_checks.h step_grad_allowed).
  void segment_sum(const Tensor& x, const Tensor& seg, int64_t n, int64_t S, const Tensor& out) override {
    check_segment_sum(x, seg, n, S, out, rules_);
    cuda::segment_sum(x.as<float>(), seg.as<int32_t>(), n, S, out.as<float>(), launch());
  }
  void expand_segments(const Tensor& x, const Tensor& seg, int64_t n, int64_t S, double scale,
                       const Tensor& out) override {
    check_expand_segments(x, seg, n, S, out, rules_);
    cuda::expand_segments(x.as<float>(), seg.as<int32_t>(), n, S, scale, out.as<float>(), launch());
  }
  void sample_weights(const Tensor& logits, int64_t n, int64_t V, double temperature, const Tensor& w) override {
    const DType dt = check_sample_weights(logits, n, V, w, rules_);
    cuda::sample_weights(logits.data, dt, n, V, temperature, w.as<float>(), launch());
  }
  void argmax_rows(const Tensor& logits, int64_t n, int64_t V, const Tensor& tokens) override {
    const DType dt = check_argmax_rows(logits, n, V, tokens, rules_);
    cuda::argmax_rows(logits.data, dt, n, V, tokens.as<int32_t>(), launch());
  }
  void sample_pick(const Tensor& w, int64_t n, int64_t V, int64_t top_k, double top_p, const SampleStream* streams,
                   const Tensor& tokens, const Tensor& logp) override {
    check_sample_pick(w, n, V, streams, tokens, logp);
    cuda::sample_pick(w.as<float>(), n, V, top_k, top_p, streams, tokens.as<int32_t>(), logp.as<float>(), launch());
  }
  void sum_squares(const Tensor& g, int64_t n, const Tensor& acc) override {
    check_sum_squares(g, n, acc, rules_);
    cuda::sum_squares(g.data, g.dtype, n, acc.as<double>(), launch());
  }
  void rmsprop_step(const Tensor& p, const Tensor& g, const Tensor& v, int64_t n, const RmspropParams& h,
                    const Tensor& sum_squares, double max_norm, const Tensor& weights16) override {
    check_rmsprop_step(p, g, v, n, sum_squares, weights16, rules_);
    cuda::rmsprop_step(p.as<float>(), g.data, g.dtype, v.as<float>(), n, h, sum_squares.as<double>(), max_norm,
                       weights16.as<uint16_t>(), launch());
  }
  void adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, int64_t n, const AdamwParams& h,
                  const Tensor& sum_squares, double max_norm, const Tensor& weights16) override {
    check_adamw_step(p, g, m, v, n, sum_squares, weights16, rules_);
    cuda::adamw_step(p.as<float>(), g.data, g.dtype, m.as<float>(), v.as<float>(), n, h, sum_squares.as<double>(),
                     max_norm, weights16.as<uint16_t>(), launch());
  }

  void logprob_forward(const Tensor& logits, int64_t N, int64_t V, const Tensor& labels, const Tensor& token_logp,
                       const Tensor& lse) override {
    check_logprob_forward(logits, N, V, labels, token_logp, lse, rules_);  // F32 outputs
    cuda::logprob_forward(logits.data, logits.dtype, N, V, labels.as<int32_t>(), token_logp.as<float>(),
                          lse.as<float>(), launch());
  }
  void logprob_backward(const Tensor& logits, int64_t N, int64_t V, const Tensor& labels, const Tensor& grad_token,
                        const Tensor& lse, const Tensor& grad_logits) override {
    check_logprob_backward(logits, N, V, labels, grad_token, lse, grad_logits, rules_);
    cuda::logprob_backward(logits.data, logits.dtype, N, V, labels.as<int32_t>(), grad_token.as<float>(),
                           lse.as<float>(), grad_logits.data, grad_logits.dtype, launch());
  }
  void masked_sequence_sum(const Tensor& token_logp, const Tensor& mask, int64_t B, int64_t T,
                           const Tensor& seq_logp) override {
    check_masked_sequence_sum(token_logp, mask, B, T, seq_logp);
    cuda::masked_sequence_sum(token_logp.as<float>(), mask.as<uint8_t>(), B, T, seq_logp.as<float>(), launch());
  }
  void sppo_loss(LossType type, double beta, int64_t B, const LossTensors& in, const LossResultTensors& out) override {
    check_sppo_loss(B, in, out, rules_);  // F32 columns, summary required
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
  void replay(CudaStepCapture& c) {
    if (errors_->pending() != 0) errors_->check();  // launches since the last check: their ids first
    errors_->replay(c.explain);
    c.graph.launch(stream_);
  }

  const OpRules& rules_ = cuda_op_rules();
  cudaStream_t stream_ = nullptr;
  cudaMemPool_t pool_ = nullptr;  // the device's default pool (the kernels' scratch), once configured
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
