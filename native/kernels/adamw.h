// AdamW over a flat range of the parameter arena (CONTRACT: cpu/adamw.cpp and cuda/adamw.cu; the
// math is optim_math.h). p, g, m, v are the same range of the weight, gradient and two state arenas.
// Clipping as in rmsprop.h: coefficient from *sum_squares and max_norm; a non-finite norm leaves
// everything unchanged. w16 (may be null; bf16 training, p F32) as in rmsprop.h: the bf16 weights'
// range, written bf16(p[i]) after each master element is updated, in the same pass. g may be bf16
// (G = uint16_t; p, m, v F32), widened per element as in rmsprop.h.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "kernels/optim_math.h"
#include "runtime/cuda_launch.h"

namespace sppo::cpu {

template <typename T, typename G = T>
void adamw_step(T* p, const G* g, T* m, T* v, int64_t n, const AdamwParams& h, const double* sum_squares,
                double max_norm, uint16_t* w16 = nullptr);

}  // namespace sppo::cpu

#ifdef SPPO_WITH_CUDA
namespace sppo::cuda {
// cuda/adamw.cu: F32 over device memory; the clip coefficient is read from the device scalar
// *sum_squares by the kernel itself (no host wait), with the CPU's arithmetic; w16 as above; g F32
// or BF16 (`gdtype`).
void adamw_step(float* p, const void* g, DType gdtype, float* m, float* v, int64_t n, const AdamwParams& h,
                const double* sum_squares, double max_norm, uint16_t* w16, const Launch& launch);
}  // namespace sppo::cuda
#endif
