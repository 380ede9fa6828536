// A bias and an activation over rows of H (CONTRACT: cpu/bias_act.cpp): what follows every linear
// layer of the DeBERTa encoder and the PairRM head (the matmul op has no bias).
//   y[r, j] = act(x[r, j] + b[j])       b optional (absent: 0)
//   Identity: v;  Gelu: 0.5 v (1 + erf(v / sqrt 2)) (exact erf, torch's default "gelu");  Tanh: tanh v
// y may be x (in place). Each element gets the same arithmetic wherever it sits in the array.
#pragma once
#include <cstdint>

namespace sppo {

enum class Activation : int { Identity = 0, Gelu = 1, Tanh = 2 };

const char* activation_name(Activation a);

namespace cpu {
template <typename T>
void bias_act(const T* x, const T* b, int64_t n, int64_t H, Activation act, T* y);
}  // namespace cpu

}  // namespace sppo
