// CUDA runtime errors as sppo::Error naming the operation (CUDA builds only).
#pragma once
#ifdef SPPO_WITH_CUDA
#include <cuda_runtime.h>

#include "core/error.h"

namespace sppo::cuda {

inline void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so later calls are not poisoned
    fail("CUDA error in ", what, ": ", cudaGetErrorString(e));
  }
}

}  // namespace sppo::cuda
#endif
