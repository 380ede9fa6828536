// Per-element math of the optimizers and of gradient clipping, shared by the CPU steps and the
// CUDA engine's fused steps (host/device). PyTorch's fp32 semantics (torch.optim.RMSprop and
// AdamW, torch.nn.utils.clip_grad_norm_):
//   clip:    coef = min(1, max_norm / (norm + 1e-6)), norm = sqrt(sum of squares of all gradients);
//            a non-finite norm skips the step (weights and state unchanged); max_norm <= 0: no clip
//   RMSprop: g += wd p;  v = alpha v + (1 - alpha) g^2;  p -= lr g / (sqrt(v) + eps)
//   AdamW:   p *= 1 - lr wd;  m += (1 - b1)(g - m);  v = b2 v + (1 - b2) g^2;
//            p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//   bf16 training: p is the fp32 master; the step also writes bf16(p) (bf16_bits) into the bf16
//            weights in the same pass. The gradients may be bf16 (the trainer's bf16 gradient
//            arena): each element is widened exactly (load_grad) and the step runs in fp32 as over
//            fp32 gradients; the sum of squares widens them the same way.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/rounding_math.h"

#if defined(__CUDACC__)
#define SPPO_OPT_HD __host__ __device__
#else
#define SPPO_OPT_HD
#endif

namespace sppo {

struct RmspropParams {
  double lr = 0, alpha = 0.99, eps = 1e-8, weight_decay = 0;
};

struct AdamwParams {
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  int64_t step = 1;  // the step being taken (1-based), for bias correction
};

namespace optim_math {

// The bf16 bits of f, rounded to nearest even, NaN kept a quiet NaN: bit for bit
// sppo::f32_to_bf16 (core/dtype.h), written once here so the CPU and CUDA optimizer steps round the
// master weights the same way (test_rmsprop checks it against f32_to_bf16).
SPPO_OPT_HD inline uint16_t bf16_bits(float f) {
#if defined(__CUDA_ARCH__)
  const uint32_t u = __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
#endif
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// A gradient element in the step's arithmetic: fp32 and fp64 as they are, bf16 bits (uint16_t, the
// bf16 gradient arena) widened exactly to fp32. Overloads, so the CPU and CUDA kernels templated on
// the gradient type read any of the three with one expression.
SPPO_OPT_HD inline float load_grad(float g) { return g; }
SPPO_OPT_HD inline double load_grad(double g) { return g; }
SPPO_OPT_HD inline float load_grad(uint16_t g) {
  const uint32_t u = static_cast<uint32_t>(g) << 16;
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// The gradient multiplier from the summed squares; *skip when the norm is not finite.
SPPO_OPT_HD inline double clip_coef(double sum_squares, double max_norm, bool* skip) {
  const double norm = std::sqrt(sum_squares);
  *skip = !std::isfinite(norm);
  if (*skip || max_norm <= 0) return 1.0;
  const double c = max_norm / (norm + 1e-6);
  return c < 1.0 ? c : 1.0;
}

// Each product and sum rounded on its own (kernels/rounding_math.h): nvcc would otherwise fuse
// them into FMAs, and the CPU and CUDA steps would part in the last bit (test_rmsprop_cuda and
// test_adamw_cuda compare them bit for bit; found by the CUDA emulator's FMA contraction,
// docs/cuda-emulator.md).
using rounding::add_rn;
using rounding::mul_rn;
using rounding::sub_rn;

// one_minus_alpha = 1 - alpha computed in double (as torch passes `value=1 - alpha`): in T it
// would lose the small difference's precision. Order of evaluation: as written in PyTorch's
// formula, left to right.
template <typename T>
SPPO_OPT_HD inline void rmsprop(T& p, T g, T& v, T lr, T alpha, T one_minus_alpha, T eps, T wd) {
  if (wd != T(0)) g = add_rn(g, mul_rn(wd, p));
  v = add_rn(mul_rn(alpha, v), mul_rn(mul_rn(one_minus_alpha, g), g));
  p = sub_rn(p, mul_rn(lr, g) / add_rn(std::sqrt(v), eps));
}

// step_size = lr / (1 - b1^t), bc2_sqrt = sqrt(1 - b2^t), decay = 1 - lr wd; omb1 = 1 - b1 and
// omb2 = 1 - b2 computed in double (as torch's lerp weight and addcmul value).
template <typename T>
SPPO_OPT_HD inline void adamw(T& p, T g, T& m, T& v, T decay, T b2, T omb1, T omb2, T step_size, T bc2_sqrt, T eps) {
  p = mul_rn(p, decay);
  m = add_rn(m, mul_rn(omb1, sub_rn(g, m)));
  v = add_rn(mul_rn(b2, v), mul_rn(mul_rn(omb2, g), g));
  p = sub_rn(p, mul_rn(step_size, m) / add_rn(std::sqrt(v) / bc2_sqrt, eps));
}

// The per-step scalars in T, derived from the double hyperparameters exactly once per step on the
// host (the CPU step and the CUDA kernels take the same values).
template <typename T>
struct RmspropScalars {
  T lr, alpha, one_minus_alpha, eps, wd;
};
template <typename T>
inline RmspropScalars<T> rmsprop_scalars(const RmspropParams& h) {
  return {static_cast<T>(h.lr), static_cast<T>(h.alpha), static_cast<T>(1 - h.alpha), static_cast<T>(h.eps),
          static_cast<T>(h.weight_decay)};
}

template <typename T>
struct AdamwScalars {
  T decay, b2, omb1, omb2, step_size, bc2_sqrt, eps;
};
template <typename T>
inline AdamwScalars<T> adamw_scalars(const AdamwParams& h) {
  const double t = static_cast<double>(h.step);
  return {static_cast<T>(1.0 - h.lr * h.weight_decay),
          static_cast<T>(h.beta2),
          static_cast<T>(1 - h.beta1),
          static_cast<T>(1 - h.beta2),
          static_cast<T>(h.lr / (1.0 - std::pow(h.beta1, t))),
          static_cast<T>(std::sqrt(1.0 - std::pow(h.beta2, t))),
          static_cast<T>(h.eps)};
}

// One element of each step with the gradient scaled by the clip coefficient (in T, as the CPU).
// G: the gradient's storage type (T, or uint16_t for bf16 gradients with T = float).
template <typename T, typename G>
SPPO_OPT_HD inline void rmsprop_element(T& p, G g, T& v, T coef, const RmspropScalars<T>& s) {
  rmsprop(p, mul_rn(static_cast<T>(load_grad(g)), coef), v, s.lr, s.alpha, s.one_minus_alpha, s.eps, s.wd);
}
template <typename T, typename G>
SPPO_OPT_HD inline void adamw_element(T& p, G g, T& m, T& v, T coef, const AdamwScalars<T>& s) {
  adamw(p, mul_rn(static_cast<T>(load_grad(g)), coef), m, v, s.decay, s.b2, s.omb1, s.omb2, s.step_size, s.bc2_sqrt,
        s.eps);
}

}  // namespace optim_math
}  // namespace sppo
