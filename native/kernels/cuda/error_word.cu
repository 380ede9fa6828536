#include <map>

#include "kernels/cuda/cuda_common.cuh"

namespace sppo {
namespace cuda {

ErrorWord& ErrorWord::get() {
  // One per host thread and device: libuv workers may run kernels concurrently.
  thread_local std::map<int, ErrorWord> words;
  int dev = 0;
  check_cuda(cudaGetDevice(&dev), "cudaGetDevice");
  ErrorWord& w = words[dev];
  if (!w.dev_) {
    check_cuda(cudaMalloc(&w.dev_, sizeof(unsigned long long)), "cudaMalloc(error word)");
    check_cuda(cudaMallocHost(&w.host_, sizeof(unsigned long long)), "cudaMallocHost(error word)");
    w.device_ = dev;
  }
  return w;
}

unsigned long long* ErrorWord::reset(cudaStream_t s) {
  check_cuda(cudaMemsetAsync(dev_, 0xff, sizeof(unsigned long long), s), "reset error word");
  return dev_;
}

unsigned long long ErrorWord::read(cudaStream_t s) {
  check_cuda(cudaMemcpyAsync(host_, dev_, sizeof(unsigned long long), cudaMemcpyDeviceToHost, s), "read error word");
  check_cuda(cudaStreamSynchronize(s), "kernel");
  return *host_;
}

}  // namespace cuda
}  // namespace sppo
