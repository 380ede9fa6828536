// Runs long native work off the JS thread and settles a Promise with its result.
// `work` runs on a libuv worker thread and must not touch N-API values: copy what it needs from
// JS buffers first (or hold references to them). `done` runs on the JS thread and builds the
// result. A sppo::Error (or any std::exception) thrown by `work` rejects the promise with its
// message.
#pragma once
#include <napi.h>

#include <exception>
#include <functional>
#include <memory>
#include <utility>

#include "core/device.h"

namespace sppo::addon {

// Settles `deferred` with done(env, result) on the JS thread; an exception `done` throws rejects it
// instead (the one OnOK of every worker here).
template <typename Result, typename Done>
void resolve_with(Napi::Promise::Deferred& deferred, Napi::Env env, const Done& done, Result& result) {
  try {
    deferred.Resolve(done(env, result));
  } catch (const Napi::Error& e) {
    deferred.Reject(e.Value());
  } catch (const std::exception& e) {
    deferred.Reject(Napi::Error::New(env, e.what()).Value());
  }
}

template <typename Result>
class LambdaWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<Result()>;
  using Done = std::function<Napi::Value(Napi::Env, Result&)>;

  LambdaWorker(Napi::Env env, Work work, Done done)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)), done_(std::move(done)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    bind_thread_to_device();  // the process's GPU is current on whichever worker runs this
    try {
      result_ = std::make_unique<Result>(work_());
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown native error");
    }
  }
  void OnOK() override { resolve_with(deferred_, Env(), done_, *result_); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  std::unique_ptr<Result> result_;
};

// Queues `work` and returns the promise of `done(env, result)`.
template <typename Result>
Napi::Promise RunAsync(Napi::Env env, std::function<Result()> work,
                       std::function<Napi::Value(Napi::Env, Result&)> done) {
  auto* w = new LambdaWorker<Result>(env, std::move(work), std::move(done));
  Napi::Promise p = w->Promise();
  w->Queue();  // libuv owns and deletes the worker
  return p;
}

// Throws a JS TypeError naming the argument unless info[i] satisfies `ok`.
#define SPPO_ARG(info, i, ok, what)                                                   \
  do {                                                                                \
    if ((info).Length() <= static_cast<size_t>(i) || !(ok))                           \
      throw Napi::TypeError::New((info).Env(), std::string("argument ") + (what));    \
  } while (0)

}  // namespace sppo::addon
