// What a CUDA kernel launch needs from its backend: the stream it is queued on and the stream's
// deferred error word (device_errors.h). Declared without CUDA headers so kernel contracts can
// name it in every build.
#pragma once

namespace sppo::cuda {

class DeviceErrors;

struct Launch {
  void* stream = nullptr;          // a cudaStream_t
  DeviceErrors* errors = nullptr;  // never null for kernels that validate
};

}  // namespace sppo::cuda
