// The CUDA backend (CUDA builds only): device memory and one non-blocking stream per process,
// deferred device errors (runtime/device_errors.h) read by synchronize(), and the kernels of
// native/kernels/cuda/: matmul through cuBLASLt (loaded at run time), embedding, RMSNorm, RoPE,
// SwiGLU, the row ops, log-probs, the SPPO loss, sum of squares, RMSprop and AdamW. Attention,
// the paged-KV decode ops and sampling come with the CUDA model engine and until then throw a
// message saying so. Tensors are F32 (the parity mode) or, where an op takes activations, BF16.
#pragma once
#ifdef SPPO_WITH_CUDA
#include <memory>

#include "backend/backend.h"

namespace sppo {

std::shared_ptr<Backend> make_cuda_backend();

}  // namespace sppo
#endif
