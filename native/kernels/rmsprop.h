// RMSprop over a flat range of the parameter arena (CONTRACT: cpu/rmsprop.cpp and cuda/rmsprop.cu;
// the math is optim_math.h). p, g, v are the same range of the weight, gradient and state arenas.
// The gradient is scaled by the clip coefficient computed on the fly from *sum_squares (device
// scalar from global_norm.h) and max_norm; a non-finite norm leaves p and v unchanged.
#pragma once
#include <cstdint>

#include "kernels/optim_math.h"
#include "runtime/cuda_launch.h"

namespace sppo::cpu {

template <typename T>
void rmsprop_step(T* p, const T* g, T* v, int64_t n, const RmspropParams& h, const double* sum_squares,
                  double max_norm);

}  // namespace sppo::cpu

#ifdef SPPO_WITH_CUDA
namespace sppo::cuda {
// cuda/rmsprop.cu: F32 over device memory; the clip coefficient is read from the device scalar
// *sum_squares by the kernel itself (no host wait), with the CPU's arithmetic.
void rmsprop_step(float* p, const float* g, float* v, int64_t n, const RmspropParams& h, const double* sum_squares,
                  double max_norm, const Launch& launch);
}  // namespace sppo::cuda
#endif
