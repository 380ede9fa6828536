// The addon's PairRM object: a sppo::PairRmModel on a backend chosen by its device, behind a JS
// class (pairrm_binding.cpp: construction, weights (addon/arena_methods.h), compare, hidden
// states, cancel, free). Long calls run through RunAsync; one call at a time: a second call while
// one is in flight, or any call after free(), is an error, never a crash. cancel() stops the call in flight within a layer.
#pragma once
#include <napi.h>

#include <memory>
#include <string>

#include "addon/call_state.h"
#include "model/pairrm_model.h"

namespace sppo::addon {

// config (src/pairrm/config.ts's native form) -> the core's struct; TypeError naming the field.
PairRmConfig ReadPairRmConfig(Napi::Env env, const Napi::Value& v);

struct PairRmState : CallState {
  static constexpr const char* kSubject = "PairRM model";
  std::shared_ptr<PairRmModel> model;
};

class PairRmObject : public Napi::ObjectWrap<PairRmObject> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit PairRmObject(const Napi::CallbackInfo& info);

 private:
  Napi::Value Params(const Napi::CallbackInfo& info);
  Napi::Value InitRandom(const Napi::CallbackInfo& info);
  Napi::Value LoadTensors(const Napi::CallbackInfo& info);
  Napi::Value Compare(const Napi::CallbackInfo& info);
  Napi::Value HiddenStates(const Napi::CallbackInfo& info);
  Napi::Value MemoryPlan(const Napi::CallbackInfo& info);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Free(const Napi::CallbackInfo& info);
  Napi::Value IsBusy(const Napi::CallbackInfo& info);
  Napi::Value IsFreed(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);

  std::shared_ptr<PairRmState> state_;
  std::string device_;
};

}  // namespace sppo::addon
