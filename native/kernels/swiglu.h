// The SwiGLU activation of the Llama MLP, forward and backward (CONTRACT: cpu/swiglu.cpp).
//   act = silu(gate) * up = gate / (1 + exp(-gate)) * up      (act may alias gate)
//   dup = dact * silu(gate);  dgate = dact * up * s * (1 + gate (1 - s)),  s = sigmoid(gate)
// Every element gets the same arithmetic wherever it sits in the array (the KV-cache decoder
// calls it on single rows and must match the full forward bit for bit).
#pragma once
#include <cstdint>

namespace sppo::cpu {

template <typename T>
void swiglu_forward(const T* gate, const T* up, int64_t count, T* act);

template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dact, int64_t count, T* dgate, T* dup);

}  // namespace sppo::cpu
