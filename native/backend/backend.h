// The seam between the model and the hardware (CONTRACT; implemented by cpu_backend.cpp and,
// in CUDA builds, cuda_backend.cpp). The model code (native/model/) is written once against this
// table: it allocates through it, moves bytes through it and runs every op through it, so a
// backend only has to fill the table.
//
// Rules every backend keeps:
// - Memory returned by allocate() is the backend's ("device memory"); host_accessible() says
//   whether the host may read it directly (the CPU backend: yes).
// - Ops and copies run in order on the backend's one stream and may return before they finish.
//   upload() may reuse its source as soon as it returns; download() waits for the stream.
// - Ops never synchronise the host. Bad values found on the device (a label out of range, a
//   non-finite logit) are recorded and thrown, with the CPU backend's message, by synchronize()
//   or check(): once per step, at the step boundary. The CPU backend throws at once.
// - Every op checks its tensors' element types and sizes against the shapes it is given (the
//   memory-safety layer; the model checks token ids and labels on the host before upload). The
//   checks and their messages live once, in op_checks.h (check_<op>), which every backend calls
//   with its OpRules (the types it computes in: the CPU F32, F64 and BF16 (emulated), CUDA F32
//   and BF16), so a bad argument gets the same message on every backend. Under BF16 compute the
//   statistics, weight gradients and loss columns are F32 on every backend (op_checks.h, wide()).
// - Each op's math is its contract header in native/kernels/<op>.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "core/device.h"
#include "core/tensor.h"
#include "kernels/attention.h"
#include "kernels/attention_decode.h"
#include "kernels/bias_act.h"
#include "kernels/disentangled_attention.h"
#include "kernels/optim_math.h"
#include "kernels/sample.h"
#include "kernels/sppo_loss.h"

namespace sppo {

// The SPPO loss op's tensors ([B] each; the optional ones may be empty).
struct LossTensors {
  Tensor policy_chosen, policy_rejected, ref_chosen, ref_rejected;
  Tensor chosen_probs, chosen_probs_win, chosen_probs_lose;  // as the loss type needs
};
struct LossResultTensors {
  Tensor losses, grad_chosen, grad_rejected, rewards_chosen, rewards_rejected;  // optional
  Tensor summary;                                                              // F64 [5], optional
  double grad_scale = 1.0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual const char* name() const = 0;
  virtual bool host_accessible() const = 0;

  // ---- memory and the stream ------------------------------------------------------------------
  // Throws sppo::Error with the size asked for and what is free when the memory is not there.
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* p) noexcept = 0;
  // Bytes a new allocation can still get (a planning figure: free device memory, or the host's
  // available memory).
  virtual std::size_t available_memory() const = 0;
  virtual void upload(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void download(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void zero(void* dst, std::size_t bytes) = 0;
  // Waits for the stream, then throws the first deferred device error, if any.
  virtual void synchronize() = 0;
  // The backend's stream as the device API knows it (a cudaStream_t on CUDA, null on the CPU), for
  // benchmarks that time with device events and for libraries that queue on the same stream.
  virtual void* native_stream() const { return nullptr; }

  // ---- the communication stream (collectives: comm/nccl_communicator.cpp) ------------------------
  // A second stream for collectives, so that they overlap the compute queued after them.
  // comm_after_compute(): the communication stream waits for the work queued on the backend's
  // stream so far; compute_after_comm(): the backend's stream waits for the work queued on the
  // communication stream so far; comm_idle(): that work has finished (never blocks). The CPU
  // backend has no streams: its work is done when a call returns.
  virtual void* comm_stream() { return nullptr; }
  virtual void comm_after_compute() {}
  virtual void compute_after_comm() {}
  virtual bool comm_idle() { return true; }

  // ---- captured steps (CUDA graphs: runtime/cuda_graph.h) ----------------------------------------
  // A caller that runs the same step many times at one shape (a bucketed decode step,
  // model/decode_buckets.h) keeps one StepCapture slot per shape and calls run_step(slot, step,
  // output). `step` queues ops of this backend only: on buffers whose addresses stay fixed for the
  // slot's life, with shapes that do not change, no uploads, downloads, allocations or host reads
  // of device memory (inputs are uploaded before run_step, outside it), and it is idempotent (run
  // twice on the same inputs it writes the same bytes). The CPU backend just calls step(). The CUDA
  // backend, unless SPPO_CUDA_GRAPHS=0: on a slot's first call it runs step eagerly (that result is
  // the one kept), captures it into a graph, replays the graph and compares `output` bitwise with
  // the eager result; a capture that fails, or a replay that differs, prints one message and keeps
  // that slot eager for good (the eager step is run again after a differing replay, so nothing
  // the graph wrote survives); a fault in that first replay (a broken context: an illegal
  // address) is raised as it is, since no eager step could follow it. Later calls replay the
  // graph. Device errors of a replay are explained as the eager launches' are (device_errors.h).
  struct StepCapture {
    virtual ~StepCapture() = default;
    virtual bool replays() const { return false; }  // the slot replays a graph (tests)
  };
  virtual void run_step(std::unique_ptr<StepCapture>& slot, const std::function<void()>& step, const Tensor& output,
                        const char* what) {
    (void)slot, (void)output, (void)what;
    step();
  }
  // Whether run_step can replay graphs here (the CUDA backend; SPPO_CUDA_GRAPHS=0 still keeps this
  // true: the switch turns capture off, not the fixed-shape steps, so results do not depend on it).
  virtual bool captures_steps() const { return false; }

  // ---- ops (one contract each in native/kernels/) ------------------------------------------------
  // embedding.h
  virtual void embedding_forward(const Tensor& table, int64_t V, int64_t H, const Tensor& ids, int64_t n,
                                 const Tensor& out) = 0;
  virtual void embedding_backward(const Tensor& dout, const Tensor& ids, int64_t n, int64_t V, int64_t H,
                                  const Tensor& dtable) = 0;
  // matmul.h
  virtual void matmul(const Tensor& A, const Tensor& B, const Tensor& C, int64_t M, int64_t N, int64_t K,
                      bool trans_a, bool trans_b, bool accumulate) = 0;
  // rmsnorm.h
  virtual void rmsnorm_forward(const Tensor& x, const Tensor& w, int64_t n, int64_t H, double eps, const Tensor& y,
                               const Tensor& rstd) = 0;
  virtual void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, int64_t n,
                                int64_t H, const Tensor& dx, const Tensor& dw, bool accumulate_dx) = 0;
  // layernorm.h (y may be x)
  virtual void layernorm_forward(const Tensor& x, const Tensor& w, const Tensor& b, int64_t n, int64_t H, double eps,
                                 const Tensor& y) = 0;
  // bias_act.h (b may be empty; y may be x)
  virtual void bias_act(const Tensor& x, const Tensor& b, int64_t n, int64_t H, Activation act, const Tensor& y) = 0;
  // rope.h
  virtual void rope_tables(const Tensor& inv_freq, int64_t half, const Tensor& positions, int64_t n,
                           const Tensor& cos, const Tensor& sin) = 0;
  virtual void rope_apply(const Tensor& x, int64_t n, int64_t heads, int64_t head_dim, const Tensor& cos,
                          const Tensor& sin, bool inverse) = 0;
  // swiglu.h
  virtual void swiglu_forward(const Tensor& gate, const Tensor& up, int64_t count, const Tensor& act) = 0;
  virtual void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dact, int64_t count,
                               const Tensor& dgate, const Tensor& dup) = 0;
  // attention.h
  virtual void attention_forward(const AttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                                 const Tensor& mask, const Tensor& out, const Tensor& lse) = 0;
  virtual void attention_backward(const AttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& mask, const Tensor& out, const Tensor& lse, const Tensor& dout,
                                  const Tensor& dq, const Tensor& dk, const Tensor& dv) = 0;
  // disentangled_attention.h (rel_index: I32 [2*max_len - 1]; start: I32 [S + 1])
  virtual void disentangled_attention(const RelAttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                                      const Tensor& pos_q, const Tensor& pos_k, const Tensor& rel_index,
                                      const Tensor& start, const Tensor& out) = 0;
  // attention_decode.h
  virtual void kv_write(const Tensor& k, const Tensor& v, const Tensor& slots, int64_t R, int64_t kw,
                        int64_t pool_rows, const Tensor& k_pool, const Tensor& v_pool) = 0;
  virtual void attention_decode(const PagedShape& s, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                                const Tensor& tables, const Tensor& table_rows, const Tensor& lengths,
                                const Tensor& out) = 0;
  // rows.h
  virtual void gather_rows(const Tensor& src, int64_t src_rows, const Tensor& idx, int64_t n, int64_t H,
                           const Tensor& dst) = 0;
  virtual void scatter_add_rows(const Tensor& src, const Tensor& idx, int64_t n, int64_t H, int64_t dst_rows,
                                const Tensor& dst) = 0;
  virtual void segment_sum(const Tensor& x, const Tensor& seg, int64_t n, int64_t S, const Tensor& out) = 0;
  virtual void expand_segments(const Tensor& x, const Tensor& seg, int64_t n, int64_t S, double scale,
                               const Tensor& out) = 0;
  // logprob.h (lse may be empty in backward; grad_logits may be the logits themselves)
  virtual void logprob_forward(const Tensor& logits, int64_t N, int64_t V, const Tensor& labels,
                               const Tensor& token_logp, const Tensor& lse) = 0;
  virtual void logprob_backward(const Tensor& logits, int64_t N, int64_t V, const Tensor& labels,
                                const Tensor& grad_token, const Tensor& lse, const Tensor& grad_logits) = 0;
  virtual void masked_sequence_sum(const Tensor& token_logp, const Tensor& mask, int64_t B, int64_t T,
                                   const Tensor& seq_logp) = 0;
  // sppo_loss.h
  virtual void sppo_loss(LossType type, double beta, int64_t B, const LossTensors& in,
                         const LossResultTensors& out) = 0;
  // sample.h (streams: n entries in host memory)
  virtual void sample_weights(const Tensor& logits, int64_t n, int64_t V, double temperature, const Tensor& w) = 0;
  virtual void argmax_rows(const Tensor& logits, int64_t n, int64_t V, const Tensor& tokens) = 0;
  virtual void sample_pick(const Tensor& w, int64_t n, int64_t V, int64_t top_k, double top_p,
                           const SampleStream* streams, const Tensor& tokens, const Tensor& logp) = 0;
  // global_norm.h, rmsprop.h, adamw.h (sum_squares: an F64 scalar; weights16: empty, or the BF16
  // weights that bf16(p) is written into in the same pass, p being their F32 master)
  virtual void sum_squares(const Tensor& g, int64_t n, const Tensor& acc) = 0;
  virtual void rmsprop_step(const Tensor& p, const Tensor& g, const Tensor& v, int64_t n, const RmspropParams& h,
                            const Tensor& sum_squares, double max_norm, const Tensor& weights16) = 0;
  virtual void adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, int64_t n,
                          const AdamwParams& h, const Tensor& sum_squares, double max_norm,
                          const Tensor& weights16) = 0;
};

// The backend for `device`; throws sppo::Error naming why it is not available here. One backend
// object per device is shared by every model and trainer of the process.
std::shared_ptr<Backend> backend_for(Device device);

}  // namespace sppo
