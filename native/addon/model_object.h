// The addon's Model object: a sppo::LlamaModel on a backend chosen by its device, behind a JS
// class (model_binding.cpp: forward passes, sampling, parameters; model_io_binding.cpp: tensor
// load/save). Long calls run through RunAsync. One call at a time per model, its trainers
// included (they share its activations): a second call while one is in flight, or any call after
// free(), is an error, never a crash. On a device backend the calls of all models run one at a time
// (addon/device_lock.h). cancel() stops the call in flight within about one step.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>
#include <string>

#include "addon/args.h"  // Guarded, used by every method
#include "core/cancel.h"
#include "model/llama_model.h"

namespace sppo::addon {

// What worker threads share with the JS objects; kept alive by the work in flight and by the
// trainers made from the model.
struct ModelState {
  std::shared_ptr<LlamaModel> model;
  CancelFlag cancel;
  std::atomic<bool> busy{false};
  std::atomic<int> trainers{0};  // live Trainer objects: the model cannot be freed under them
};

// Held by an async call for as long as its worker lives; clears the busy flag when released.
// The call's cancel ticket is taken when the lease is (on the JS thread, as the call is made), so
// a cancel() while the work still waits for a libuv thread or the device lock stops it too.
class Lease {
 public:
  explicit Lease(std::shared_ptr<ModelState> st) : st_(std::move(st)), ticket_(st_->cancel.begin()) {}
  ~Lease() { st_->busy.store(false); }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  // The cancel point of this call.
  CancelPoint cancel_point() const { return CancelPoint{&st_->cancel, ticket_}; }

 private:
  std::shared_ptr<ModelState> st_;
  uint64_t ticket_;
};

// Throws a JS Error naming `what` when `st` is freed or busy; else marks it busy.
std::shared_ptr<Lease> Acquire(Napi::Env env, const std::shared_ptr<ModelState>& st, const std::string& what);
void CheckUsable(Napi::Env env, const std::shared_ptr<ModelState>& st, const std::string& what);

class ModelObject : public Napi::ObjectWrap<ModelObject> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit ModelObject(const Napi::CallbackInfo& info);
  // The state behind a JS Model (for Trainer's constructor); throws a TypeError otherwise.
  static std::shared_ptr<ModelState> StateOf(Napi::Env env, const Napi::Value& v, const char* what);

 private:
  // model_binding.cpp
  Napi::Value Params(const Napi::CallbackInfo& info);
  Napi::Value InitRandom(const Napi::CallbackInfo& info);
  Napi::Value SetGradientCheckpointing(const Napi::CallbackInfo& info);
  Napi::Value Logits(const Napi::CallbackInfo& info);
  Napi::Value Scores(const Napi::CallbackInfo& info);
  Napi::Value SequenceLogprobs(const Napi::CallbackInfo& info);
  Napi::Value Generate(const Napi::CallbackInfo& info);
  Napi::Value ReadParam(const Napi::CallbackInfo& info);
  Napi::Value MemoryPlan(const Napi::CallbackInfo& info);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Free(const Napi::CallbackInfo& info);
  Napi::Value IsBusy(const Napi::CallbackInfo& info);
  Napi::Value IsFreed(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  // model_io_binding.cpp
  Napi::Value LoadTensors(const Napi::CallbackInfo& info);
  Napi::Value SaveTensors(const Napi::CallbackInfo& info);

  std::shared_ptr<ModelState> state_;
  std::string device_;

  static Napi::FunctionReference* constructor_;
};

// Copies `n` elements of a backend tensor (F32 or F64) into a new JS typed array.
Napi::Value TensorToJs(Napi::Env env, Backend& be, const Tensor& t);

}  // namespace sppo::addon
