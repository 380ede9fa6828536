// SPPO_HD marks the per-element math that the CPU kernels (kernels/cpu/) and their CUDA twins
// (kernels/cuda/) share through the kernels/*_math.h headers: __host__ __device__ under nvcc,
// nothing for the host compiler. One definition of the arithmetic is what makes the twins agree.
#pragma once

#ifndef SPPO_HD
#if defined(__CUDACC__)
#define SPPO_HD __host__ __device__
#else
#define SPPO_HD
#endif
#endif
