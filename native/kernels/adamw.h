// AdamW over a flat range of the parameter arena (CONTRACT: cpu/adamw.cpp; the math is
// optim_math.h). p, g, m, v are the same range of the weight, gradient and two state arenas.
// Clipping as in rmsprop.h: coefficient from *sum_squares and max_norm; a non-finite norm leaves
// everything unchanged.
#pragma once
#include <cstdint>

#include "kernels/optim_math.h"

namespace sppo::cpu {

template <typename T>
void adamw_step(T* p, const T* g, T* m, T* v, int64_t n, const AdamwParams& h, const double* sum_squares,
                double max_norm);

}  // namespace sppo::cpu
