// Per-element math of the rotary embeddings (kernels/rope.h), shared by cpu/rope.cpp and
// cuda/rope.cu (host/device).
#pragma once
#include <cmath>
#include <cstdint>

#include "core/host_device.h"

namespace sppo::rope_math {

// The angle as transformers computes it: one float32 product of the inverse frequency and the
// position converted to float32.
SPPO_HD inline float angle(float inv_freq, int32_t position) { return inv_freq * static_cast<float>(position); }

// cos and sin of the float32 angle, evaluated in double and rounded once to float32 (so the CPU's
// libm and CUDA's double-precision functions agree on almost every value).
SPPO_HD inline float cos_of(float angle) { return static_cast<float>(std::cos(static_cast<double>(angle))); }
SPPO_HD inline float sin_of(float angle) { return static_cast<float>(std::sin(static_cast<double>(angle))); }

// rotate_half on one pair (a = x[i], b = x[i + half]); inverse applies the transpose (backward).
template <typename T>
SPPO_HD inline void rotate(T& a, T& b, T c, T s, bool inverse) {
  const T x = a, y = b;
  if (!inverse) {
    a = x * c - y * s;
    b = y * c + x * s;
  } else {
    a = x * c + y * s;
    b = y * c - x * s;
  }
}

}  // namespace sppo::rope_math
