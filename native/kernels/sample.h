// Next-token choice for generation (CONTRACT: cpu/sample.cpp and cuda/sample.cu, which picks the
// same token with the same logp from the same weights and stream; shared math: sample_math.h).
//
// Two stages, so that the device-independent part can be checked across devices:
//  1. sample_weights: w[r, j] = exp((logit[r, j] - max_j logit[r, j]) / temperature) in fp32
//     (the largest weight is exactly 1). Greedy rows use argmax_rows instead (first maximum).
//  2. sample_pick, from the weights alone, in exact integer arithmetic (so any summation order,
//     serial or parallel, gives the same token):
//     - q_j = floor(w_j * 2^40) (weights below 2^-40 of the largest are never drawn);
//     - top-k (k > 0): keep tokens with q_j >= the k-th largest q (ties at the k-th value kept);
//     - top-p (< 1): order the kept tokens by (q desc, id asc); keep a token if the sum of q over
//       the tokens before it is < ceil(top_p * total kept q) (computed in double): the smallest
//       high-probability set reaching top_p, as transformers' TopPLogitsWarper, at least one token;
//     - draw: u = philox bits53(seed, sequence, step) (core/philox.h); r = floor(u * kept / 2^53);
//       walk the kept tokens in id order and take the first whose running sum of q exceeds r;
//     - logp = log(q_pick) - log(kept total): the log-probability under the distribution drawn from.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "runtime/cuda_launch.h"

namespace sppo {

// Where one row's uniform comes from.
struct SampleStream {
  uint64_t seed = 0;
  uint64_t sequence = 0;
  uint64_t step = 0;
};

constexpr int kSampleWeightBits = 40;

namespace cpu {
template <typename T>
void sample_weights(const T* logits, int64_t n, int64_t V, double temperature, float* w);
template <typename T>
void argmax_rows(const T* logits, int64_t n, int64_t V, int32_t* tokens);
// top_k 0 = off; top_p in (0, 1].
void sample_pick(const float* w, int64_t n, int64_t V, int64_t top_k, double top_p, const SampleStream* streams,
                 int32_t* tokens, float* logp);
}  // namespace cpu

}  // namespace sppo

#ifdef SPPO_WITH_CUDA
namespace sppo::cuda {
// cuda/sample.cu: the same contract on device memory, queued without synchronising; one block
// per row. logits are `dtype` (F32, or BF16 in the bf16 mode); w, tokens and logp are device
// memory; streams are n entries in host memory, copied to the device on the stream. The weights
// are the CPU's AVX2 path's bits (kernels/sample_math.h); the pick and its logp are the CPU's
// bits for the same weights and streams (integer sums, sample_math's log). Bad values (a
// non-finite logit, a weight outside [0, 1], a row with no weight above 2^-40) are reported to
// the stream's deferred error word with the CPU's messages.
void sample_weights(const void* logits, DType dtype, int64_t n, int64_t V, double temperature, float* w,
                    const Launch& launch);
void argmax_rows(const void* logits, DType dtype, int64_t n, int64_t V, int32_t* tokens, const Launch& launch);
void sample_pick(const float* w, int64_t n, int64_t V, int64_t top_k, double top_p, const SampleStream* streams,
                 int32_t* tokens, float* logp, const Launch& launch);
}  // namespace sppo::cuda
#endif
