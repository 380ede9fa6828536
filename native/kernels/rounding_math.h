// Round-to-nearest arithmetic that the CPU kernels and their CUDA twins compile to the same bits:
// on the device the _rn intrinsics, which nvcc never contracts into multiply-adds (it contracts
// plain a * b + c by default, --fmad=true, rounding once where the host rounds twice); on the host
// plain operators (the core's host code is built without an FMA target, so nothing is contracted
// there). Fused multiply-adds are written as fma on both sides: one rounding everywhere. Used by
// the shared math headers whose twins must agree bit for bit (sample_math.h, optim_math.h).
#pragma once
#include <cmath>

#include "core/host_device.h"

namespace sppo::rounding {

SPPO_HD inline float fmul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
SPPO_HD inline float fadd_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
SPPO_HD inline float fsub_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
SPPO_HD inline float fdiv_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
SPPO_HD inline float ffma_rn(float a, float b, float c) {
#ifdef __CUDA_ARCH__
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
SPPO_HD inline double dmul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
SPPO_HD inline double dadd_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
SPPO_HD inline double dsub_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
SPPO_HD inline double ddiv_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
SPPO_HD inline double dfma_rn(double a, double b, double c) {
#ifdef __CUDA_ARCH__
  return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
// The same, overloaded on float and double, for math templated on its element type.
SPPO_HD inline float add_rn(float a, float b) { return fadd_rn(a, b); }
SPPO_HD inline float sub_rn(float a, float b) { return fsub_rn(a, b); }
SPPO_HD inline float mul_rn(float a, float b) { return fmul_rn(a, b); }
SPPO_HD inline double add_rn(double a, double b) { return dadd_rn(a, b); }
SPPO_HD inline double sub_rn(double a, double b) { return dsub_rn(a, b); }
SPPO_HD inline double mul_rn(double a, double b) { return dmul_rn(a, b); }

}  // namespace sppo::rounding
