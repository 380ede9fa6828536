// Per-element math of SwiGLU (kernels/swiglu.h), shared by the scalar path of cpu/swiglu.cpp and
// by cuda/swiglu.cu (host/device). The CPU's AVX2 path evaluates the same formulas with its
// vectorized exp (core/simd_avx2.h), so it differs from these by exp's rounding only.
#pragma once
#include <cmath>

#include "core/host_device.h"

namespace sppo::swiglu_math {

// act = silu(gate) * up = gate / (1 + exp(-gate)) * up
template <typename T>
SPPO_HD inline T forward(T gate, T up) {
  return gate / (T(1) + std::exp(-gate)) * up;
}

// dup = dact silu(gate);  dgate = dact up s (1 + gate (1 - s)),  s = sigmoid(gate)
template <typename T>
SPPO_HD inline void backward(T gate, T up, T dact, T& dgate, T& dup) {
  const T sig = T(1) / (T(1) + std::exp(-gate));
  dup = dact * (gate * sig);
  dgate = dact * up * sig * (T(1) + gate * (T(1) - sig));
}

}  // namespace sppo::swiglu_math
