// Cooperative cancellation of long native calls (generation, log-probs over many rows, a training
// micro-batch). The caller (the addon, on a signal from TypeScript) sets the flag; the core checks
// it between decode steps, prefill chunks and layers, and throws Cancelled, so a call returns
// within about one step and nothing half-done is reported as a result.
#pragma once
#include <atomic>
#include <cstdint>

#include "core/error.h"

namespace sppo {

class Cancelled : public Error {
 public:
  Cancelled() : Error("cancelled") {}
};

// One flag per native object. cancel() stops the call in flight (if any); a call that starts
// later runs normally: each call takes a ticket, and cancel() cancels tickets up to the newest.
class CancelFlag {
 public:
  uint64_t begin() { return ++started_; }
  void cancel() { cancelled_upto_.store(started_.load()); }
  bool cancelled(uint64_t ticket) const { return ticket <= cancelled_upto_.load(); }

 private:
  std::atomic<uint64_t> started_{0}, cancelled_upto_{0};
};

// What long loops check: a flag and the ticket of the running call (no flag: never cancelled).
struct CancelPoint {
  const CancelFlag* flag = nullptr;
  uint64_t ticket = 0;
  void check() const {
    if (flag && flag->cancelled(ticket)) throw Cancelled();
  }
};

}  // namespace sppo
