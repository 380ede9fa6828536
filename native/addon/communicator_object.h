// The addon's Communicator object: the collectives a Trainer reduces gradients with. Today the
// local (world size 1) communicator; host and NCCL communicators join it for data parallelism.
#pragma once
#include <napi.h>

#include <memory>

#include "comm/communicator.h"

namespace sppo::addon {

class CommunicatorObject : public Napi::ObjectWrap<CommunicatorObject> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit CommunicatorObject(const Napi::CallbackInfo& info);
  // The communicator behind a JS Communicator; throws a TypeError otherwise.
  static std::shared_ptr<Communicator> Of(Napi::Env env, const Napi::Value& v, const char* what);

 private:
  Napi::Value Rank(const Napi::CallbackInfo& info);
  Napi::Value WorldSize(const Napi::CallbackInfo& info);
  Napi::Value Kind(const Napi::CallbackInfo& info);

  std::shared_ptr<Communicator> comm_;
  static Napi::FunctionReference* constructor_;
};

}  // namespace sppo::addon
