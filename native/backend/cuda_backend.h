// The CUDA backend (CUDA builds only): device memory and one non-blocking stream per process,
// deferred device errors (runtime/device_errors.h) read by synchronize(), and the kernels of
// native/kernels/cuda/: matmul through cuBLASLt (loaded at run time), embedding, RMSNorm, RoPE,
// SwiGLU, the row ops, causal attention (forward and backward), the paged-KV ops (kv_write,
// attention_decode), log-probs, sampling, the SPPO loss, sum of squares, RMSprop and AdamW, and
// DeBERTa's LayerNorm, bias + activation and disentangled attention: every op of backend.h.
// Tensors are F32 (the parity mode) or, where an op takes activations, BF16; statistics (the
// attention lse among them) stay F32.
#pragma once
#ifdef SPPO_WITH_CUDA
#include <memory>

#include "backend/backend.h"

namespace sppo {

std::shared_ptr<Backend> make_cuda_backend();

}  // namespace sppo
#endif
