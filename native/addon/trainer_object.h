// The addon's Trainer object: a sppo::Trainer (gradients, optimizer state, communicator) over a
// JS Model, which it keeps alive. Calls share the model's one-call-at-a-time lease.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>

#include "addon/model_object.h"
#include "train/trainer.h"

namespace sppo::addon {

struct TrainerState {
  std::shared_ptr<ModelState> model;
  std::unique_ptr<Trainer> trainer;
  std::atomic<bool> broken{false};  // a loadState failed part way: only loadState and free are allowed
  ~TrainerState() {
    trainer.reset();  // before the model it refers to
    if (model) model->trainers.fetch_sub(1);
  }
};

class TrainerObject : public Napi::ObjectWrap<TrainerObject> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit TrainerObject(const Napi::CallbackInfo& info);

 private:
  Napi::Value Accumulate(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value ZeroGrad(const Napi::CallbackInfo& info);
  Napi::Value Gradient(const Napi::CallbackInfo& info);
  Napi::Value StateInfo(const Napi::CallbackInfo& info);
  Napi::Value SaveState(const Napi::CallbackInfo& info);
  Napi::Value LoadState(const Napi::CallbackInfo& info);
  Napi::Value Buckets(const Napi::CallbackInfo& info);
  Napi::Value Free(const Napi::CallbackInfo& info);
  Napi::Value IsFreed(const Napi::CallbackInfo& info);

  std::shared_ptr<TrainerState> state_;
  // Throws when freed (or its model is busy); `what` names the method.
  void Check(Napi::Env env, const char* what) const;
};

}  // namespace sppo::addon
