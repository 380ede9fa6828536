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
#include "addon/call_state.h"
#include "model/llama_model.h"

namespace sppo::addon {

// What worker threads share with the JS objects; kept alive by the work in flight and by the
// trainers made from the model.
struct ModelState : CallState {
  static constexpr const char* kSubject = "model";
  std::shared_ptr<LlamaModel> model;
  std::atomic<int> trainers{0};
  // Throws when `what` would write the weights under a live trainer that keeps fp32 master
  // weights (a bf16 model): the trainer's next step would write bf16(master) over them.
  void check_weights_writable(Napi::Env env, const std::string& what) const {
    if (trainers.load() > 0 && model && model->dtypes().weight != model->dtypes().grad)
      throw Napi::Error::New(env, what + ": a trainer keeps fp32 master weights of this " +
                                      precision_name(model->precision()) +
                                      " model; write its weights before creating the trainer, or free the trainer first");
  }  // live Trainer objects: the model cannot be freed under them
};

// Throws a JS Error naming `what` when `st` is freed or busy; else marks it busy
// (addon/call_state.h; the trainers' calls go through these too).
std::shared_ptr<Lease> Acquire(Napi::Env env, const std::shared_ptr<ModelState>& st, const std::string& what);
void CheckUsable(Napi::Env env, const std::shared_ptr<ModelState>& st, const std::string& what);

class ModelObject : public Napi::ObjectWrap<ModelObject> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit ModelObject(const Napi::CallbackInfo& info);
  // The state behind a JS Model (for Trainer's constructor); throws a TypeError otherwise.
  static std::shared_ptr<ModelState> StateOf(Napi::Env env, const Napi::Value& v, const char* what);

 private:
  // model_binding.cpp (params, initRandom and loadTensors: addon/arena_methods.h)
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

// Copies a backend tensor into a new JS typed array: Float64Array for F64, else Float32Array (BF16
// widened).
Napi::Value TensorToJs(Napi::Env env, Backend& be, const Tensor& t);

}  // namespace sppo::addon
