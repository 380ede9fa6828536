// The SwiGLU activation of the Llama MLP, forward and backward (CONTRACT: cpu/swiglu.cpp and
// cuda/swiglu.cu; the per-element formulas are kernels/swiglu_math.h).
//   act = silu(gate) * up = gate / (1 + exp(-gate)) * up      (act may alias gate)
//   dup = dact * silu(gate);  dgate = dact * up * s * (1 + gate (1 - s)),  s = sigmoid(gate)
// Every element gets the same arithmetic wherever it sits in the array (the KV-cache decoder
// calls it on single rows and must match the full forward bit for bit).
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "runtime/cuda_launch.h"

namespace sppo::cpu {

template <typename T>
void swiglu_forward(const T* gate, const T* up, int64_t count, T* act);

template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dact, int64_t count, T* dgate, T* dup);

}  // namespace sppo::cpu

#ifdef SPPO_WITH_CUDA
namespace sppo::cuda {
// cuda/swiglu.cu: the same contract on device memory, every tensor `dtype` (F32 or BF16), fp32
// math with full-precision expf.
void swiglu_forward(const void* gate, const void* up, DType dtype, int64_t count, void* act, const Launch& launch);
void swiglu_backward(const void* gate, const void* up, const void* dact, DType dtype, int64_t count, void* dgate,
                     void* dup, const Launch& launch);
}  // namespace sppo::cuda
#endif
