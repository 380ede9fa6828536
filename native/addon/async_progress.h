// RunAsync (addon/async.h) with progress: `work` gets a `report(count)` to call on its worker
// thread; each count is queued and passed to the JS function `on_progress` on the JS thread.
// Node-addon-api's AsyncProgressQueueWorker delivers every queued report before it settles the
// promise (it settles from the finalizer of its thread-safe function, once the queue is drained),
// so no report comes after the promise is settled. When `on_progress` throws, later reports are
// dropped, `stop` is called (it cancels the work, which then ends within about a step) and the
// promise is rejected with what the callback threw, whatever the work did after it.
#pragma once
#include <napi.h>

#include <exception>
#include <functional>
#include <memory>
#include <utility>

#include "addon/async.h"
#include "core/device.h"

namespace sppo::addon {

template <typename Result>
class ProgressWorker : public Napi::AsyncProgressQueueWorker<int64_t> {
 public:
  using Report = std::function<void(int64_t)>;
  using Work = std::function<Result(const Report&)>;
  using Done = std::function<Napi::Value(Napi::Env, Result&)>;

  ProgressWorker(Napi::Env env, Work work, Done done, Napi::Function on_progress, std::function<void()> stop)
      : Napi::AsyncProgressQueueWorker<int64_t>(env), deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)), done_(std::move(done)), on_progress_(Napi::Persistent(on_progress)),
        stop_(std::move(stop)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    bind_thread_to_device();  // as LambdaWorker
    const Report report = [&progress](int64_t n) { progress.Send(&n, 1); };
    try {
      result_ = std::make_unique<Result>(work_(report));
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown native error");
    }
  }
  void OnProgress(const int64_t* data, size_t count) override {
    if (!thrown_.IsEmpty() || count == 0) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      on_progress_.Call({Napi::Number::New(env, static_cast<double>(data[count - 1]))});
    } catch (const Napi::Error& e) {
      thrown_ = Napi::Persistent(e.Value());
      stop_();
    }
  }
  void OnOK() override {
    if (!thrown_.IsEmpty()) {
      deferred_.Reject(thrown_.Value());
      return;
    }
    resolve_with(deferred_, Env(), done_, *result_);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(thrown_.IsEmpty() ? e.Value() : thrown_.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  Napi::FunctionReference on_progress_;
  std::function<void()> stop_;
  std::unique_ptr<Result> result_;
  Napi::ObjectReference thrown_;  // what on_progress threw, if it did
};

// Queues `work` and returns the promise of `done(env, result)`; reports go to `on_progress`.
template <typename Result>
Napi::Promise RunAsyncWithProgress(Napi::Env env, typename ProgressWorker<Result>::Work work,
                                   typename ProgressWorker<Result>::Done done, Napi::Function on_progress,
                                   std::function<void()> stop) {
  auto* w = new ProgressWorker<Result>(env, std::move(work), std::move(done), on_progress, std::move(stop));
  Napi::Promise p = w->Promise();
  w->Queue();  // libuv owns and deletes the worker
  return p;
}

}  // namespace sppo::addon
