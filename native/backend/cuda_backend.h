// The CUDA backend (CUDA builds only): device memory and one non-blocking stream per process,
// deferred device errors (runtime/device_errors.h) read by synchronize(), and the kernels of
// native/kernels/cuda/. Today it runs the log-prob and SPPO-loss kernels; the model ops
// (matmul through cuBLASLt, attention, norms, the optimizers) come with the CUDA model engine and
// until then throw a message saying so, so a model cannot be built on it by accident.
#pragma once
#ifdef SPPO_WITH_CUDA
#include <memory>

#include "backend/backend.h"

namespace sppo {

std::shared_ptr<Backend> make_cuda_backend();

}  // namespace sppo
#endif
