// Log-probabilities of labels from logits, forward and backward (CONTRACT: implemented in
// kernels/cpu/logprob.cpp and kernels/cuda/logprob.cu).
//
//   token_logp[n] = logits[n, label[n]] - logsumexp(logits[n, :])      (0 where label == -100)
//   d logits[n, :] = g[n] * (onehot(label[n]) - softmax(logits[n, :]))  (0 rows where ignored)
//
// Logits are [N, V] row-major, float32 or bfloat16 (raw uint16 bits); math is fp32 and stable
// for any finite input. Backward may write in place over the logits (grad_logits == logits with
// the same dtype) so training needs no second logits-sized buffer. Labels are validated
// (0 <= label < V or label == -100) and a bad one throws sppo::Error naming the row.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "runtime/cuda_launch.h"

namespace sppo {

constexpr int32_t kIgnoreIndex = -100;

namespace cpu {
// lse (nullable, [N]) receives logsumexp per row so backward can skip recomputing it.
void logprob_forward(const void* logits, DType dtype, int64_t N, int64_t V, const int32_t* labels,
                     float* token_logp, float* lse);
// lse may be null (then it is recomputed). grad_logits may alias logits when grad_dtype == dtype.
void logprob_backward(const void* logits, DType dtype, int64_t N, int64_t V, const int32_t* labels,
                      const float* grad_token, const float* lse, void* grad_logits, DType grad_dtype);
// seq_logp[b] = sum_t mask[b*T + t] * token_logp[b*T + t]   (mask: 0/1 bytes)
void masked_sequence_sum(const float* token_logp, const uint8_t* mask, int64_t B, int64_t T,
                         float* seq_logp);
// The float64 twin (fp64 test models): same contract, double logits and results.
void logprob_forward_f64(const double* logits, int64_t N, int64_t V, const int32_t* labels, double* token_logp,
                         double* lse);
void logprob_backward_f64(const double* logits, int64_t N, int64_t V, const int32_t* labels,
                          const double* grad_token, const double* lse, double* grad_logits);
}  // namespace cpu

#ifdef SPPO_WITH_CUDA
namespace cuda {
// Same contracts; every pointer is device memory; queued on the launch's stream without
// synchronising: a bad label or non-finite logit is recorded in the stream's deferred error word
// (runtime/device_errors.h) and thrown, with the CPU's message, at the next check.
void logprob_forward(const void* logits, DType dtype, int64_t N, int64_t V, const int32_t* labels,
                     float* token_logp, float* lse, const Launch& launch);
void logprob_backward(const void* logits, DType dtype, int64_t N, int64_t V, const int32_t* labels,
                      const float* grad_token, const float* lse, void* grad_logits, DType grad_dtype,
                      const Launch& launch);
void masked_sequence_sum(const float* token_logp, const uint8_t* mask, int64_t B, int64_t T,
                         float* seq_logp, const Launch& launch);
}  // namespace cuda
#endif

}  // namespace sppo
