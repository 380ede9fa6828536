// RunAsync (addon/async.h) with progress: `work` gets a `report(r)` to call on its worker thread;
// each report is queued and handed, in order, to `deliver(env, on_progress, r)` on the JS thread,
// which calls the JS function `on_progress` with it.
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

// Report must be copyable (the queue copies it): hold big payloads through a shared_ptr.
template <typename Result, typename Report>
class ProgressWorker : public Napi::AsyncProgressQueueWorker<Report> {
 public:
  using Send = std::function<void(const Report&)>;
  using Work = std::function<Result(const Send&)>;
  using Done = std::function<Napi::Value(Napi::Env, Result&)>;
  using Deliver = std::function<void(Napi::Env, Napi::FunctionReference&, const Report&)>;
  using ExecutionProgress = typename Napi::AsyncProgressQueueWorker<Report>::ExecutionProgress;

  ProgressWorker(Napi::Env env, Work work, Done done, Deliver deliver, Napi::Function on_progress,
                 std::function<void()> stop)
      : Napi::AsyncProgressQueueWorker<Report>(env), deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)), done_(std::move(done)), deliver_(std::move(deliver)),
        on_progress_(Napi::Persistent(on_progress)), stop_(std::move(stop)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    bind_thread_to_device();  // as LambdaWorker
    const Send send = [&progress](const Report& r) { progress.Send(&r, 1); };
    try {
      result_ = std::make_unique<Result>(work_(send));
    } catch (const std::exception& e) {
      this->SetError(e.what());
    } catch (...) {
      this->SetError("unknown native error");
    }
  }
  void OnProgress(const Report* data, size_t count) override {
    Napi::Env env = this->Env();
    Napi::HandleScope scope(env);
    for (size_t i = 0; i < count && thrown_.IsEmpty(); ++i) {
      try {
        deliver_(env, on_progress_, data[i]);
      } catch (const Napi::Error& e) {
        thrown_ = Napi::Persistent(e.Value());
        stop_();
      }
    }
  }
  void OnOK() override {
    if (!thrown_.IsEmpty()) {
      deferred_.Reject(thrown_.Value());
      return;
    }
    resolve_with(deferred_, this->Env(), done_, *result_);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(thrown_.IsEmpty() ? e.Value() : thrown_.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  Deliver deliver_;
  Napi::FunctionReference on_progress_;
  std::function<void()> stop_;
  std::unique_ptr<Result> result_;
  Napi::ObjectReference thrown_;  // what on_progress threw, if it did
};

// Queues `work` and returns the promise of `done(env, result)`; reports go to `on_progress` through
// `deliver`.
template <typename Result, typename Report>
Napi::Promise RunAsyncWithProgress(Napi::Env env, typename ProgressWorker<Result, Report>::Work work,
                                   typename ProgressWorker<Result, Report>::Done done,
                                   typename ProgressWorker<Result, Report>::Deliver deliver,
                                   Napi::Function on_progress, std::function<void()> stop) {
  auto* w = new ProgressWorker<Result, Report>(env, std::move(work), std::move(done), std::move(deliver), on_progress,
                                               std::move(stop));
  Napi::Promise p = w->Promise();
  w->Queue();  // libuv owns and deletes the worker
  return p;
}

}  // namespace sppo::addon
