// The one-call-at-a-time plumbing of the addon's model objects (Model, PairRM): a busy flag and a
// cancel flag shared with the worker threads, the lease an async call holds, and the checks that
// turn a call on a freed or busy object into a JS Error, never a crash.
#pragma once
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "core/cancel.h"

namespace sppo::addon {

// The part of a model object's state that its calls share; the full state derives from it, holds
// `model` and names itself in errors with `kSubject` ("model", "PairRM model").
struct CallState {
  CancelFlag cancel;
  std::atomic<bool> busy{false};
};

// Held by an async call for as long as its worker lives; clears the busy flag when released.
// The call's cancel ticket is taken when the lease is (on the JS thread, as the call is made), so
// a cancel() while the work still waits for a libuv thread or the device lock stops it too.
class Lease {
 public:
  explicit Lease(std::shared_ptr<CallState> st) : st_(std::move(st)), ticket_(st_->cancel.begin()) {}
  ~Lease() { st_->busy.store(false); }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  // The cancel point of this call.
  CancelPoint cancel_point() const { return CancelPoint{&st_->cancel, ticket_}; }

 private:
  std::shared_ptr<CallState> st_;  // shares ownership of the whole state (and so of its model)
  uint64_t ticket_;
};

// Throws a JS Error naming `what` when `st` is freed or busy.
template <typename State>
void CheckUsableState(Napi::Env env, const std::shared_ptr<State>& st, const std::string& what) {
  if (!st || !st->model) throw Napi::Error::New(env, what + ": the " + State::kSubject + " was freed");
  if (st->busy.load())
    throw Napi::Error::New(env, what + ": another call on this " + State::kSubject +
                                    " is still running (await it first)");
}

// CheckUsableState, then marks `st` busy until the returned lease is released.
template <typename State>
std::shared_ptr<Lease> AcquireState(Napi::Env env, const std::shared_ptr<State>& st, const std::string& what) {
  CheckUsableState(env, st, what);
  st->busy.store(true);
  return std::make_shared<Lease>(st);
}

}  // namespace sppo::addon
