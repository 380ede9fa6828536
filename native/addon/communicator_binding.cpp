// The Communicator class (communicator_object.h): new Communicator({kind: 'local', device?}).
#include "addon/communicator_object.h"

#include "addon/args.h"
#include "addon/model_args.h"
#include "addon/registry.h"
#include "backend/backend.h"

namespace sppo::addon {

Napi::FunctionReference* CommunicatorObject::constructor_ = nullptr;

CommunicatorObject::CommunicatorObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CommunicatorObject>(info) {
  Napi::Env env = info.Env();
  Napi::Object o = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
  const std::string kind = o.Get("kind").IsUndefined() ? "local" : ReadString(env, o.Get("kind"), "options.kind");
  const std::string device = o.Get("device").IsUndefined() ? "cpu" : ReadString(env, o.Get("device"), "options.device");
  if (kind != "local") throw Napi::TypeError::New(env, "options.kind must be 'local' (got '" + kind + "')");
  if (device != "cpu" && device != "cuda")
    throw Napi::TypeError::New(env, "options.device must be 'cpu' or 'cuda' (got '" + device + "')");
  try {
    comm_ = make_local_communicator(backend_for(device == "cpu" ? Device::CPU : Device::CUDA));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

std::shared_ptr<Communicator> CommunicatorObject::Of(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsObject() || !constructor_ || !v.As<Napi::Object>().InstanceOf(constructor_->Value()))
    throw Napi::TypeError::New(env, std::string(what) + " must be a Communicator");
  return Unwrap(v.As<Napi::Object>())->comm_;
}

Napi::Value CommunicatorObject::Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), comm_->rank()); }
Napi::Value CommunicatorObject::WorldSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), comm_->world_size());
}
Napi::Value CommunicatorObject::Kind(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), comm_->kind()); }

Napi::Function CommunicatorObject::Define(Napi::Env env) {
  Napi::Function f = DefineClass(env, "Communicator",
                                 {
                                     InstanceAccessor<&CommunicatorObject::Rank>("rank"),
                                     InstanceAccessor<&CommunicatorObject::WorldSize>("worldSize"),
                                     InstanceAccessor<&CommunicatorObject::Kind>("kind"),
                                 });
  constructor_ = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

void RegisterCommunicator(Napi::Env env, Napi::Object exports) {
  exports.Set("Communicator", CommunicatorObject::Define(env));
}

}  // namespace sppo::addon
