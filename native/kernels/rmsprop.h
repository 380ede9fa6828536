// RMSprop over a flat range of the parameter arena (CONTRACT: cpu/rmsprop.cpp and cuda/rmsprop.cu;
// the math is optim_math.h). p, g, v are the same range of the weight, gradient and state arenas.
// The gradient is scaled by the clip coefficient computed on the fly from *sum_squares (device
// scalar from global_norm.h) and max_norm; a non-finite norm leaves p and v unchanged.
// w16 (may be null; bf16 training, p F32): the range of the bf16 weights; after each element of p
// (the fp32 master) is updated, w16[i] = bf16(p[i]) (optim_math::bf16_bits, round to nearest even),
// in the same pass. A skipped step leaves w16 unchanged too.
// g may be bf16 (G = uint16_t, the bf16 bits of the trainer's bf16 gradient arena; p and v F32):
// each element is widened exactly (optim_math::load_grad) and the step is the fp32 one.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "kernels/optim_math.h"
#include "runtime/cuda_launch.h"

namespace sppo::cpu {

template <typename T, typename G = T>
void rmsprop_step(T* p, const G* g, T* v, int64_t n, const RmspropParams& h, const double* sum_squares,
                  double max_norm, uint16_t* w16 = nullptr);

}  // namespace sppo::cpu

#ifdef SPPO_WITH_CUDA
namespace sppo::cuda {
// cuda/rmsprop.cu: F32 over device memory; the clip coefficient is read from the device scalar
// *sum_squares by the kernel itself (no host wait), with the CPU's arithmetic; w16 as above. g is
// `gdtype`: F32, or BF16 (widened per element as on the CPU).
void rmsprop_step(float* p, const void* g, DType gdtype, float* v, int64_t n, const RmspropParams& h, const double* sum_squares,
                  double max_norm, uint16_t* w16, const Launch& launch);
}  // namespace sppo::cuda
#endif
