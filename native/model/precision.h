// The numeric modes of a model (CONTRACT). fp32: everything in float32 (the CPU engine, and the
// CUDA engine's parity mode); fp64: everything in float64 (the finite-difference tests, CPU only);
// bf16: bf16 weights and activations, fp32 gradients, statistics and master weights (CUDA, and
// the CPU by emulation: fp32 kernels over widened inputs, outputs rounded once, so the CPU's bf16
// model is the reference the CUDA one is compared with).
#pragma once
#include "core/dtype.h"
#include "core/error.h"

namespace sppo {

enum class Precision : int { FP32 = 0, FP64 = 1, BF16 = 2 };

struct Dtypes {
  DType weight;  // the weight arena
  DType act;     // activations, logits
  DType grad;    // gradients and optimizer state
  DType stat;    // norms' rstd, attention lse, log-probs, losses
};

inline Dtypes dtypes_of(Precision p) {
  switch (p) {
    case Precision::FP32: return {DType::F32, DType::F32, DType::F32, DType::F32};
    case Precision::FP64: return {DType::F64, DType::F64, DType::F64, DType::F64};
    case Precision::BF16: return {DType::BF16, DType::BF16, DType::F32, DType::F32};
  }
  fail("unknown precision ", static_cast<int>(p));
}

inline const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::FP64: return "fp64";
    case Precision::BF16: return "bf16";
  }
  return "?";
}

}  // namespace sppo
