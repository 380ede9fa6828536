// DeviceErrors (runtime/device_errors.h).
#ifdef SPPO_WITH_CUDA
#include "runtime/device_errors.h"

#include <cuda_runtime.h>

#include "core/error.h"
#include "runtime/cuda_check.h"

namespace sppo::cuda {

namespace {
constexpr unsigned kMaxLaunches = 0xffff;  // launch ids pack into 16 bits
}

DeviceErrors::DeviceErrors(void* stream) : stream_(stream) {
  check_cuda(cudaMalloc(&dev_, sizeof(unsigned long long)), "cudaMalloc(error word)");
  check_cuda(cudaMallocHost(&host_, sizeof(unsigned long long)), "cudaMallocHost(error word)");
  check_cuda(cudaMemsetAsync(dev_, 0xff, sizeof(unsigned long long), static_cast<cudaStream_t>(stream_)),
             "reset error word");
}

DeviceErrors::~DeviceErrors() {
  if (dev_) cudaFree(dev_);
  if (host_) cudaFreeHost(host_);
}

unsigned DeviceErrors::expect(Explain explain) {
  // Past kMaxLaunches launches between checks the last id is reused: its explainer still names
  // the op, only the value may be fetched from the wrong launch's buffer.
  if (explain_.size() < kMaxLaunches) explain_.push_back(std::move(explain));
  return static_cast<unsigned>(explain_.size() - 1);
}

std::vector<DeviceErrors::Explain> DeviceErrors::take_from(std::size_t base) {
  std::vector<Explain> out;
  for (std::size_t i = base; i < explain_.size(); ++i) out.push_back(std::move(explain_[i]));
  if (base < explain_.size()) explain_.resize(base);
  return out;
}

void DeviceErrors::replay(const std::vector<Explain>& ex) {
  SPPO_CHECK(explain_.empty(), "device errors: a graph replay with ", explain_.size(),
             " launches not yet checked (their ids would collide with the graph's)");
  explain_ = ex;
}

void DeviceErrors::check() {
  cudaStream_t s = static_cast<cudaStream_t>(stream_);
  check_cuda(cudaMemcpyAsync(host_, dev_, sizeof(unsigned long long), cudaMemcpyDeviceToHost, s), "read error word");
  check_cuda(cudaStreamSynchronize(s), "the queued kernels");
  const unsigned long long w = *host_;
  std::vector<Explain> explain;
  explain.swap(explain_);
  if (w == kNoError) return;
  check_cuda(cudaMemsetAsync(dev_, 0xff, sizeof(unsigned long long), s), "reset error word");
  const unsigned code = static_cast<unsigned>(w & 0xff), launch = static_cast<unsigned>((w >> 8) & 0xffff);
  const int64_t index = static_cast<int64_t>(w >> 24);
  SPPO_CHECK(launch < explain.size(), "a CUDA kernel reported error code ", code, " at index ", index,
             " for an unknown launch");
  explain[launch](code, index);
  fail("a CUDA kernel reported error code ", code, " at index ", index);
}

}  // namespace sppo::cuda
#endif
