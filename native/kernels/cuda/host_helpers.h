// Host-side helpers of the CUDA kernels' launchers (CUDA builds only): a device value fetched for
// an error message (at check time, when the stream is idle), stream-ordered scratch memory, and
// grid sizes for grid-stride loops.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/error.h"
#include "runtime/cuda_check.h"

namespace sppo {
namespace cuda {

// One element of device memory, for the message of a deferred error (device_errors.h explainers
// run after the stream has been synchronised).
template <typename T>
T fetch(const T* dev, int64_t i) {
  T v{};
  check_cuda(cudaMemcpy(&v, dev + i, sizeof(T), cudaMemcpyDeviceToHost), "fetch for an error message");
  return v;
}

// Scratch memory ordered on a stream (cudaMallocAsync / cudaFreeAsync): allocating and freeing
// never wait for the host, and the memory is released only after the kernels queued before the
// free have used it. Kernels that need a workspace (sorts, partial sums) take one per call.
class Scratch {
 public:
  Scratch(std::size_t bytes, cudaStream_t s) : s_(s) {
    if (bytes) check_cuda(cudaMallocAsync(&p_, bytes, s_), "cudaMallocAsync(scratch)");
  }
  ~Scratch() {
    if (p_) cudaFreeAsync(p_, s_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  // The scratch at a byte offset, as T.
  template <typename T>
  T* at(std::size_t byte_offset = 0) const {
    return reinterpret_cast<T*>(static_cast<char*>(p_) + byte_offset);
  }

 private:
  void* p_ = nullptr;
  cudaStream_t s_;
};

// The element type of a CUDA op over floats: F32 or BF16, and F16 where `f16` (the ops with an
// F16 path, PairRM's fp16 mode, and the row copies, which move bits without reading them; any
// other kernel would read F16 bits as BF16). `what` names the tensors in the message.
inline void check_float_dtype(const char* op, const char* what, DType dtype, bool f16) {
  if (f16)
    SPPO_CHECK(dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16, op, ": CUDA ", what,
               " must be F32, BF16 or F16 (got ", dtype_name(dtype), ")");
  else
    SPPO_CHECK(dtype == DType::F32 || dtype == DType::BF16, op, ": CUDA ", what, " must be F32 or BF16 (got ",
               dtype_name(dtype), ")");
}

// Bytes rounded up to 256 (to carve several arrays out of one Scratch, each aligned).
inline std::size_t round256(std::size_t b) { return (b + 255) / 256 * 256; }

// Blocks for a grid-stride loop over n items: enough to cover n, capped (each thread then loops).
inline unsigned grid_for(int64_t n, int threads) {
  constexpr int64_t kMaxBlocks = 1 << 16;
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : b > kMaxBlocks ? kMaxBlocks : b);
}

}  // namespace cuda
}  // namespace sppo
