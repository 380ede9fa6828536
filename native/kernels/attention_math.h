// Per-element math of causal attention (kernels/attention.h, kernels/attention_decode.h), shared by
// the CPU kernels (cpu/attention.cpp, cpu/attention_decode.cpp) and their CUDA twins
// (cuda/attention.cu, cuda/attention_decode.cu), host/device: the formulas and their order of
// operations are written once. The sums around them (dot products, the softmax denominator, the
// weighted values) are the callers': the CPU adds in key order, CUDA in tiles.
#pragma once
#include <cmath>

#include "core/host_device.h"

namespace sppo::attention_math {

// The score of one key: the dot product <q, k_j> times the scale (1/sqrt(head_dim)).
template <typename T>
SPPO_HD inline T score(T dot, T scale) {
  return dot * scale;
}

// The unnormalised softmax weight of a score against the row's (or a tile's) maximum.
template <typename T>
SPPO_HD inline T weight(T s, T max) {
  return std::exp(s - max);
}

// The log-sum-exp kept for backward: max + log(sum of weights).
template <typename T>
SPPO_HD inline T lse(T max, T sum) {
  return max + std::log(sum);
}

// Backward: the probability of a key recomputed from the dot product and the row's lse.
template <typename T>
SPPO_HD inline T prob(T dot, T scale, T lse) {
  return std::exp(dot * scale - lse);
}

// Backward: the gradient of the unscaled dot product <q, k_j>, p_j (dp_j - D) scale, where
// dp_j = <dout, v_j> and D = sum_j p_j dp_j = <dout, out>.
template <typename T>
SPPO_HD inline T dscore(T p, T dp, T D, T scale) {
  return p * (dp - D) * scale;
}

}  // namespace sppo::attention_math
