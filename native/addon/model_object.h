// The addon's Model object: a sppo::LlamaModel (and its optimizer) behind a JS class. Methods
// are split by concern over model_binding.cpp (forward, backward, sampling, gradients),
// model_io_binding.cpp (tensor load/save) and optimizer_binding.cpp. Long calls run through
// RunAsync; a busy flag rejects a second call on the same model while one is in flight, and every
// call after free() is rejected, so misuse from JS is an error, never a crash.
#pragma once
#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "addon/args.h"  // Guarded, used by every Model method
#include "model/llama.h"
#include "optim/optimizer.h"

namespace sppo::addon {

// What worker threads share with the JS object; kept alive by the work in flight.
struct ModelState {
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Optimizer> optimizer;
  OptimizerConfig optimizer_config;
};

// Held by an async call for as long as its worker lives; clears the busy flag when released.
class Lease {
 public:
  explicit Lease(std::shared_ptr<std::atomic<bool>> busy) : busy_(std::move(busy)) {}
  ~Lease() { busy_->store(false); }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

 private:
  std::shared_ptr<std::atomic<bool>> busy_;
};

class ModelObject : public Napi::ObjectWrap<ModelObject> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit ModelObject(const Napi::CallbackInfo& info);

 private:
  // model_binding.cpp
  Napi::Value Params(const Napi::CallbackInfo& info);
  Napi::Value InitRandom(const Napi::CallbackInfo& info);
  Napi::Value SetGradientCheckpointing(const Napi::CallbackInfo& info);
  Napi::Value Logits(const Napi::CallbackInfo& info);
  Napi::Value Scores(const Napi::CallbackInfo& info);
  Napi::Value SequenceLogprobs(const Napi::CallbackInfo& info);
  Napi::Value Generate(const Napi::CallbackInfo& info);
  Napi::Value Accumulate(const Napi::CallbackInfo& info);
  Napi::Value ZeroGrad(const Napi::CallbackInfo& info);
  Napi::Value Gradient(const Napi::CallbackInfo& info);
  Napi::Value ReadParam(const Napi::CallbackInfo& info);
  Napi::Value Free(const Napi::CallbackInfo& info);
  Napi::Value IsBusy(const Napi::CallbackInfo& info);
  Napi::Value IsFreed(const Napi::CallbackInfo& info);
  // model_io_binding.cpp
  Napi::Value LoadTensors(const Napi::CallbackInfo& info);
  Napi::Value SaveTensors(const Napi::CallbackInfo& info);
  // optimizer_binding.cpp
  Napi::Value OptimizerStep(const Napi::CallbackInfo& info);
  Napi::Value OptimizerStateInfo(const Napi::CallbackInfo& info);
  Napi::Value SaveOptimizerState(const Napi::CallbackInfo& info);
  Napi::Value LoadOptimizerState(const Napi::CallbackInfo& info);

  // Throws a JS Error when the model was freed or a call is in flight; `what` names the method.
  void CheckUsable(Napi::Env env, const char* what) const;
  // CheckUsable, then marks the model busy until the returned lease is released.
  std::shared_ptr<Lease> Acquire(Napi::Env env, const char* what);

  std::shared_ptr<ModelState> state_;
  std::shared_ptr<std::atomic<bool>> busy_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace sppo::addon
