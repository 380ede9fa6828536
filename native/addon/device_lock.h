// One call at a time on a device backend, per process. The CUDA backend (one per process, shared
// by every model, PairRM model and trainer) keeps state that concurrent calls from two worker
// threads would race on: its cached matmul plans and its deferred error word, whose first error
// must be thrown by the call that queued it. The CPU backend runs concurrent calls (each is its
// own work on the host) and takes no lock. Held by the addon's worker-thread work only.
#pragma once
#include <mutex>

#include "backend/backend.h"

namespace sppo::addon {

inline std::unique_lock<std::mutex> device_call_lock(const Backend& be) {
  static std::mutex mu;
  if (be.host_accessible()) return std::unique_lock<std::mutex>();
  return std::unique_lock<std::mutex>(mu);
}

}  // namespace sppo::addon
