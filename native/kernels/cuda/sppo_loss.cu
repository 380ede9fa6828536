// CUDA twin of kernels/sppo_loss.h: one block strides over the B pairs (B is a batch of pairs,
// small), computes each example with the shared host/device math in double, and reduces the
// summary on the device. Invalid inputs go to the stream's deferred error word and are thrown,
// with the CPU backend's messages, at the next check.
#include <cmath>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/sppo_loss.h"
#include "kernels/sppo_loss_math.h"

namespace sppo {
namespace cuda {
namespace {

constexpr int kBlock = 256;
// Error codes: the field that failed.
enum : unsigned { kPolicyChosen = 1, kPolicyRejected, kRefChosen, kRefRejected, kProbs, kProbsWin, kProbsLose };

__device__ __forceinline__ bool is_prob(float p) { return p >= 0.f && p <= 1.f; }  // false for NaN

__global__ void __launch_bounds__(kBlock) loss_kernel(LossInputs in, LossOutputs out, unsigned long long* err,
                                                      unsigned launch) {
  __shared__ double smem[32];
  const int64_t B = in.B;
  const double invB = 1.0 / static_cast<double>(B), gs = out.grad_scale;
  double loss = 0, rc = 0, rr = 0, acc = 0;
  for (int64_t i = threadIdx.x; i < B; i += kBlock) {
    const float pc = in.policy_chosen[i], pr = in.policy_rejected[i], c = in.ref_chosen[i], r = in.ref_rejected[i];
    bool ok = true;
    if (!isfinite(pc)) report(err, i, launch, kPolicyChosen), ok = false;
    if (!isfinite(pr)) report(err, i, launch, kPolicyRejected), ok = false;
    if (!isfinite(c)) report(err, i, launch, kRefChosen), ok = false;
    if (!isfinite(r)) report(err, i, launch, kRefRejected), ok = false;
    float p = 0, pw = 0, pl = 0;
    if (in.type == LossType::SPPO_SINGLE) {
      p = in.chosen_probs[i];
      if (!is_prob(p)) report(err, i, launch, kProbs), ok = false;
    }
    if (in.type == LossType::SPPO) {
      pw = in.chosen_probs_win[i];
      pl = in.chosen_probs_lose[i];
      if (!is_prob(pw)) report(err, i, launch, kProbsWin), ok = false;
      if (!is_prob(pl)) report(err, i, launch, kProbsLose), ok = false;
    }
    if (!ok) continue;
    const double sw = double(pc) - double(c), sl = double(pr) - double(r);
    const loss_math::Example e = loss_math::example(in.type, in.beta, sw, sl, p, pw, pl);
    if (out.losses) out.losses[i] = static_cast<float>(e.loss);
    if (out.grad_chosen) out.grad_chosen[i] = static_cast<float>(e.d_chosen * invB * gs);
    if (out.grad_rejected) out.grad_rejected[i] = static_cast<float>(e.d_rejected * invB * gs);
    if (out.rewards_chosen) out.rewards_chosen[i] = static_cast<float>(in.beta * sw);
    if (out.rewards_rejected) out.rewards_rejected[i] = static_cast<float>(in.beta * sl);
    loss += e.loss;
    rc += in.beta * sw;
    rr += in.beta * sl;
    acc += sw > sl ? 1.0 : 0.0;
  }
  loss = block_sum(loss, smem);
  rc = block_sum(rc, smem);
  rr = block_sum(rr, smem);
  acc = block_sum(acc, smem);
  if (threadIdx.x == 0) {
    double* summary = out.summary;
    summary[0] = loss * invB;
    summary[1] = rc * invB;
    summary[2] = rr * invB;
    summary[3] = (rc - rr) * invB;
    summary[4] = acc * invB;
  }
}

float fetch(const float* dev, int64_t i) {
  float v = 0;
  check_cuda(cudaMemcpy(&v, dev + i, sizeof(float), cudaMemcpyDeviceToHost), "fetch for an error message");
  return v;
}

}  // namespace

void sppo_loss(const LossInputs& in, const LossOutputs& out, const Launch& l) {
  const int64_t B = in.B;
  SPPO_CHECK(B > 0, "B must be > 0 (got ", B, ")");
  SPPO_CHECK(std::isfinite(in.beta) && in.beta > 0, "beta must be finite and > 0 (got ", in.beta, ")");
  const char* name = loss_type_name(in.type);
  SPPO_CHECK(std::string(name) != "?", "unknown loss type ", static_cast<int>(in.type));
  SPPO_CHECK(in.policy_chosen, "policy_chosen must not be null");
  SPPO_CHECK(in.policy_rejected, "policy_rejected must not be null");
  SPPO_CHECK(in.ref_chosen, "ref_chosen must not be null");
  SPPO_CHECK(in.ref_rejected, "ref_rejected must not be null");
  SPPO_CHECK(out.summary, "summary must not be null on CUDA");
  if (in.type == LossType::SPPO_SINGLE) SPPO_CHECK(in.chosen_probs, "chosen_probs is required by loss '", name, "'");
  if (in.type == LossType::SPPO) {
    SPPO_CHECK(in.chosen_probs_win, "chosen_probs_win is required by loss '", name, "'");
    SPPO_CHECK(in.chosen_probs_lose, "chosen_probs_lose is required by loss '", name, "'");
  }
  const unsigned launch = l.errors->expect([in](unsigned code, int64_t i) {
    switch (code) {
      case kPolicyChosen: fail("policy_chosen[", i, "] is not finite (", fetch(in.policy_chosen, i), ")");
      case kPolicyRejected: fail("policy_rejected[", i, "] is not finite (", fetch(in.policy_rejected, i), ")");
      case kRefChosen: fail("ref_chosen[", i, "] is not finite (", fetch(in.ref_chosen, i), ")");
      case kRefRejected: fail("ref_rejected[", i, "] is not finite (", fetch(in.ref_rejected, i), ")");
      case kProbs: fail("chosen_probs[", i, "] = ", fetch(in.chosen_probs, i), " is not a probability in [0, 1]");
      case kProbsWin:
        fail("chosen_probs_win[", i, "] = ", fetch(in.chosen_probs_win, i), " is not a probability in [0, 1]");
      case kProbsLose:
        fail("chosen_probs_lose[", i, "] = ", fetch(in.chosen_probs_lose, i), " is not a probability in [0, 1]");
      default: fail("CUDA sppo_loss kernel reported error code ", code, " at ", i);
    }
  });
  loss_kernel<<<1, kBlock, 0, stream_of(l)>>>(in, out, l.errors->word(), launch);
  check_cuda(cudaGetLastError(), "sppo_loss launch");
}

}  // namespace cuda
}  // namespace sppo
