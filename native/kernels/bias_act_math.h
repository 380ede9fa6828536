// Per-element math of bias + activation (kernels/bias_act.h), shared by cpu/bias_act.cpp and
// cuda/bias_act.cu (host/device), in the compute type T. erf and tanh are each device's library
// functions (the C library's on the host, CUDA's on the GPU: within 2 ulp of each other), so the
// twins agree to those functions' rounding; the bias add and Identity are the same bits.
#pragma once
#include <cmath>

#include "core/host_device.h"
#include "kernels/bias_act.h"

namespace sppo::bias_act_math {

// 0.5 v (1 + erf(v / sqrt 2)): the exact GELU (torch's default "gelu").
template <typename T>
SPPO_HD inline T gelu(T v) {
  const T half = T(0.5), inv_sqrt2 = static_cast<T>(0.70710678118654752440);
  return half * v * (T(1) + std::erf(v * inv_sqrt2));
}

template <typename T, Activation A>
SPPO_HD inline T apply(T v) {
  if constexpr (A == Activation::Gelu) return gelu(v);
  else if constexpr (A == Activation::Tanh) return std::tanh(v);
  else return v;
}

}  // namespace sppo::bias_act_math
