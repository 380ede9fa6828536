// The numeric modes of a model (CONTRACT). fp32: everything in float32 (the CPU engine, and the
// CUDA engine's parity mode); fp64: everything in float64 (the finite-difference tests, CPU only);
// bf16: bf16 weights and activations, fp32 gradients, statistics and master weights (CUDA, and
// the CPU by emulation: fp32 kernels over widened inputs, outputs rounded once, so the CPU's bf16
// model is the reference the CUDA one is compared with); fp16: the same with IEEE half weights and
// activations, for inference models only (PairRM, as llm-blender runs it: the Llama model refuses
// it, since training in fp16 needs loss scaling the engine does not have). The gradient arena's type is the trainer's
// (train/trainer.h, TrainerOptions::grad_dtype): dtypes_of(p).grad by default, or BF16 for a bf16
// model (gradient_dtype_allowed): the model writes its weight gradients in whatever type the arena
// it is handed has, so that choice is not a fourth precision.
#pragma once
#include <optional>

#include "core/dtype.h"
#include "core/error.h"

namespace sppo {

enum class Precision : int { FP32 = 0, FP64 = 1, BF16 = 2, FP16 = 3 };

struct Dtypes {
  DType weight;  // the weight arena
  DType act;     // activations, logits
  DType grad;    // optimizer state, master weights, and the default gradient arena
  DType stat;    // norms' rstd, attention lse, log-probs, losses
};

inline Dtypes dtypes_of(Precision p) {
  switch (p) {
    case Precision::FP32: return {DType::F32, DType::F32, DType::F32, DType::F32};
    case Precision::FP64: return {DType::F64, DType::F64, DType::F64, DType::F64};
    case Precision::BF16: return {DType::BF16, DType::BF16, DType::F32, DType::F32};
    case Precision::FP16: return {DType::F16, DType::F16, DType::F32, DType::F32};
  }
  fail("unknown precision ", static_cast<int>(p));
}

// The Llama model's modes (model/llama_model.h and its memory plans): all but fp16.
inline void check_llama_precision(Precision p) {
  SPPO_CHECK(p != Precision::FP16,
             "the Llama model runs in fp32, bf16 or fp64; fp16 is offered for PairRM only (use bf16 on the GPU)");
}

// The gradient arena types a model of precision p writes into: dtypes_of(p).grad, and BF16 for a
// bf16 model (its matmuls, norms and embedding accumulate in fp32 and round once per call).
inline bool gradient_dtype_allowed(Precision p, DType g) {
  return g == dtypes_of(p).grad || (p == Precision::BF16 && g == DType::BF16);
}

inline const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::FP64: return "fp64";
    case Precision::BF16: return "bf16";
    case Precision::FP16: return "fp16";
  }
  return "?";
}

// The gradient arena's type for a trainer (or a plan) of a precision-p model: unset = dtypes_of(p).grad;
// a given type must be allowed (gradient_dtype_allowed), else the error says why.
inline DType resolve_grad_dtype(Precision p, const std::optional<DType>& g) {
  if (!g) return dtypes_of(p).grad;
  SPPO_CHECK(gradient_dtype_allowed(p, *g), dtype_name(*g), " gradients need ",
             *g == DType::BF16 ? "a bf16 model (precision bf16)" : "a model whose gradients are of that type",
             "; this model is ", precision_name(p), ", with ", dtype_name(dtypes_of(p).grad), " gradients");
  return *g;
}

}  // namespace sppo
