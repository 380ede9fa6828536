// The addon's Communicator object: the collectives a Trainer reduces gradients with (local, host
// or NCCL, comm/*.h), plus the few calls TypeScript makes itself (barrier, a small all-reduce,
// abort). A Trainer given a Communicator shares it; calls on one communicator must not overlap
// (every rank must queue collectives in the same order), which TypeScript keeps.
#pragma once
#include <napi.h>

#include <memory>

#include "backend/backend.h"
#include "comm/communicator.h"

namespace sppo::addon {

class CommunicatorObject : public Napi::ObjectWrap<CommunicatorObject> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit CommunicatorObject(const Napi::CallbackInfo& info);
  // The communicator behind a JS Communicator; throws a TypeError otherwise (or when freed).
  static std::shared_ptr<Communicator> Of(Napi::Env env, const Napi::Value& v, const char* what);
  // A JS Communicator over `comm` (made by an async connect).
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<Communicator> comm, std::shared_ptr<Backend> be);

 private:
  Napi::Value Rank(const Napi::CallbackInfo& info);
  Napi::Value WorldSize(const Napi::CallbackInfo& info);
  Napi::Value Kind(const Napi::CallbackInfo& info);
  Napi::Value Barrier(const Napi::CallbackInfo& info);
  Napi::Value AllReduce(const Napi::CallbackInfo& info);
  Napi::Value Abort(const Napi::CallbackInfo& info);
  Napi::Value Free(const Napi::CallbackInfo& info);
  Napi::Value IsFreed(const Napi::CallbackInfo& info);
  void Check(Napi::Env env, const char* what) const;

  std::shared_ptr<Communicator> comm_;
  std::shared_ptr<Backend> be_;
  static Napi::FunctionReference* constructor_;
};

}  // namespace sppo::addon
