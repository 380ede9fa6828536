// CudaBackend (backend/cuda_backend.h).
#ifdef SPPO_WITH_CUDA
#include "backend/cuda_backend.h"

#include <cuda_runtime.h>

#include <memory>
#include <mutex>
#include <string>

#include "backend/buffer.h"
#include "core/device.h"
#include "kernels/logprob.h"
#include "kernels/sppo_loss.h"
#include "runtime/cuda_check.h"
#include "runtime/cuda_launch.h"
#include "runtime/device_errors.h"

namespace sppo {
namespace {

using cuda::check_cuda;

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    bind_thread_to_device();  // the stream belongs to this process's device (select_cuda_device)
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    errors_ = std::make_unique<cuda::DeviceErrors>(stream_);
  }
  ~CudaBackend() override {
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

  [[noreturn]] static void missing(const char* op) {
    fail("the CUDA backend has no ", op,
         " kernel yet: it comes with the CUDA model engine; run models with --device cpu");
  }
  void embedding_forward(const Tensor&, int64_t, int64_t, const Tensor&, int64_t, const Tensor&) override {
    missing("embedding_forward");
  }
  void embedding_backward(const Tensor&, const Tensor&, int64_t, int64_t, int64_t, const Tensor&) override {
    missing("embedding_backward");
  }
  void matmul(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, int64_t, bool, bool, bool) override {
    missing("matmul");
  }
  void rmsnorm_forward(const Tensor&, const Tensor&, int64_t, int64_t, double, const Tensor&, const Tensor&) override {
    missing("rmsnorm_forward");
  }
  void rmsnorm_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, const Tensor&,
                        const Tensor&, bool) override {
    missing("rmsnorm_backward");
  }
  void rope_tables(const Tensor&, int64_t, const Tensor&, int64_t, const Tensor&, const Tensor&) override {
    missing("rope_tables");
  }
  void rope_apply(const Tensor&, int64_t, int64_t, int64_t, const Tensor&, const Tensor&, bool) override {
    missing("rope_apply");
  }
  void swiglu_forward(const Tensor&, const Tensor&, int64_t, const Tensor&) override { missing("swiglu_forward"); }
  void swiglu_backward(const Tensor&, const Tensor&, const Tensor&, int64_t, const Tensor&, const Tensor&) override {
    missing("swiglu_backward");
  }
  void attention_forward(const AttnShape&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                         const Tensor&) override {
    missing("attention_forward");
  }
  void attention_backward(const AttnShape&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                          const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&) override {
    missing("attention_backward");
  }
  void kv_write(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, int64_t, const Tensor&,
                const Tensor&) override {
    missing("kv_write");
  }
  void attention_decode(const PagedShape&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                        const Tensor&, const Tensor&) override {
    missing("attention_decode");
  }
  void gather_rows(const Tensor&, int64_t, const Tensor&, int64_t, int64_t, const Tensor&) override {
    missing("gather_rows");
  }
  void scatter_add_rows(const Tensor&, const Tensor&, int64_t, int64_t, int64_t, const Tensor&) override {
    missing("scatter_add_rows");
  }
  void segment_sum(const Tensor&, const Tensor&, int64_t, int64_t, const Tensor&) override { missing("segment_sum"); }
  void expand_segments(const Tensor&, const Tensor&, int64_t, int64_t, double, const Tensor&) override {
    missing("expand_segments");
  }
  void sample_weights(const Tensor&, int64_t, int64_t, double, const Tensor&) override { missing("sample_weights"); }
  void argmax_rows(const Tensor&, int64_t, int64_t, const Tensor&) override { missing("argmax_rows"); }
  void sample_pick(const Tensor&, int64_t, int64_t, int64_t, double, const SampleStream*, const Tensor&,
                   const Tensor&) override {
    missing("sample_pick");
  }
  void sum_squares(const Tensor&, int64_t, const Tensor&) override { missing("sum_squares"); }
  void rmsprop_step(const Tensor&, const Tensor&, const Tensor&, int64_t, const RmspropParams&, const Tensor&,
                    double) override {
    missing("rmsprop_step");
  }
  void adamw_step(const Tensor&, const Tensor&, const Tensor&, const Tensor&, int64_t, const AdamwParams&,
                  const Tensor&, double) override {
    missing("adamw_step");
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
  std::mutex comm_mu_;
  cudaStream_t comm_ = nullptr;
  cudaEvent_t compute_done_ = nullptr, comm_done_ = nullptr;
};

}  // namespace

std::shared_ptr<Backend> make_cuda_backend() { return std::make_shared<CudaBackend>(); }

}  // namespace sppo
#endif
