// backend_for: one shared backend object per device (backend.h).
#include <memory>
#include <mutex>

#include "backend/backend.h"
#include "backend/cpu_backend.h"
#include "core/error.h"

#ifdef SPPO_WITH_CUDA
#include "backend/cuda_backend.h"
#endif

namespace sppo {

std::shared_ptr<Backend> backend_for(Device device) {
  static std::mutex mu;
  static std::shared_ptr<Backend> cpu, cuda;
  std::lock_guard<std::mutex> lock(mu);
  if (device == Device::CPU) {
    if (!cpu) cpu = make_cpu_backend();
    return cpu;
  }
  require_device(device);  // a clear reason when this build or machine has no CUDA
#ifdef SPPO_WITH_CUDA
  if (!cuda) cuda = make_cuda_backend();
  return cuda;
#else
  fail("device 'cuda' is not available: this build of sppo-native has no CUDA backend");
#endif
}

}  // namespace sppo
