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

// Whether the context is broken: a fault (an illegal address, a kernel's trap, a launch failure)
// is sticky, and every call returns it from then on, so reading the last error twice still finds
// it, where a non-sticky error is cleared by the first read.
inline bool context_broken() {
  if (cudaGetLastError() == cudaSuccess) return false;
  return cudaGetLastError() != cudaSuccess;
}

}  // namespace sppo::cuda
#endif
