// RAII device memory for the bindings and benchmarks (CUDA builds only): allocate, upload,
// download, free. Errors become sppo::Error naming the operation.
#pragma once
#ifdef SPPO_WITH_CUDA
#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "core/error.h"

namespace sppo {
namespace cuda {

inline void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so later calls are not poisoned
    fail("CUDA error in ", what, ": ", cudaGetErrorString(e));
  }
}

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    if (bytes > 0) check_cuda(cudaMalloc(&ptr_, bytes), "cudaMalloc");
  }
  // Allocates and uploads `bytes` from host memory (null host: allocation only).
  DeviceBuffer(const void* host, std::size_t bytes) : DeviceBuffer(bytes) {
    if (host && bytes) check_cuda(cudaMemcpy(ptr_, host, bytes, cudaMemcpyHostToDevice), "upload");
  }
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  std::size_t bytes() const { return bytes_; }

  void download(void* host, std::size_t bytes) const {
    SPPO_CHECK(bytes <= bytes_, "download of ", bytes, " bytes from a ", bytes_, "-byte device buffer");
    if (bytes) check_cuda(cudaMemcpy(host, ptr_, bytes, cudaMemcpyDeviceToHost), "download");
  }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace cuda
}  // namespace sppo
#endif  // SPPO_WITH_CUDA
