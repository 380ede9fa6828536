// The Communicator class (communicator_object.h):
//   new Communicator({kind: 'local', device?})
//   connectCommunicator({kind: 'host', name, rank, worldSize, timeoutMs, heartbeatMs?}) -> Promise<Communicator>
//   connectCommunicator({kind: 'nccl', id, rank, worldSize, timeoutMs}) -> Promise<Communicator>
//   hostCommunicatorName(), ncclUniqueId(), selectCudaDevice(index)
#include <cstring>

#include "addon/async.h"
#include "addon/args.h"
#include "addon/communicator_object.h"
#include "addon/model_args.h"
#include "addon/registry.h"
#include "backend/buffer.h"
#include "comm/host_communicator.h"
#include "comm/nccl_communicator.h"
#include "core/device.h"

namespace sppo::addon {

Napi::FunctionReference* CommunicatorObject::constructor_ = nullptr;

namespace {
// Carries a native communicator into the constructor called by Wrap().
struct Pending {
  std::shared_ptr<Communicator> comm;
  std::shared_ptr<Backend> be;
};
}  // namespace

CommunicatorObject::CommunicatorObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CommunicatorObject>(info) {
  Napi::Env env = info.Env();
  if (info.Length() > 0 && info[0].IsExternal()) {
    Pending* p = info[0].As<Napi::External<Pending>>().Data();
    comm_ = std::move(p->comm);
    be_ = std::move(p->be);
    return;
  }
  Napi::Object o = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
  const std::string kind = o.Get("kind").IsUndefined() ? "local" : ReadString(env, o.Get("kind"), "options.kind");
  const std::string device = o.Get("device").IsUndefined() ? "cpu" : ReadString(env, o.Get("device"), "options.device");
  if (kind != "local")
    throw Napi::TypeError::New(env, "new Communicator: options.kind must be 'local' (got '" + kind +
                                        "'); host and NCCL communicators come from connectCommunicator()");
  if (device != "cpu" && device != "cuda")
    throw Napi::TypeError::New(env, "options.device must be 'cpu' or 'cuda' (got '" + device + "')");
  try {
    be_ = backend_for(device == "cpu" ? Device::CPU : Device::CUDA);
    comm_ = make_local_communicator(be_);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Object CommunicatorObject::Wrap(Napi::Env env, std::shared_ptr<Communicator> comm, std::shared_ptr<Backend> be) {
  Pending p{std::move(comm), std::move(be)};
  return constructor_->New({Napi::External<Pending>::New(env, &p)});
}

std::shared_ptr<Communicator> CommunicatorObject::Of(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsObject() || !constructor_ || !v.As<Napi::Object>().InstanceOf(constructor_->Value()))
    throw Napi::TypeError::New(env, std::string(what) + " must be a Communicator");
  CommunicatorObject* c = Unwrap(v.As<Napi::Object>());
  c->Check(env, what);
  return c->comm_;
}

void CommunicatorObject::Check(Napi::Env env, const char* what) const {
  if (!comm_) throw Napi::Error::New(env, std::string(what) + ": the communicator was freed");
}

Napi::Value CommunicatorObject::Rank(const Napi::CallbackInfo& info) {
  Check(info.Env(), "Communicator.rank");
  return Napi::Number::New(info.Env(), comm_->rank());
}
Napi::Value CommunicatorObject::WorldSize(const Napi::CallbackInfo& info) {
  Check(info.Env(), "Communicator.worldSize");
  return Napi::Number::New(info.Env(), comm_->world_size());
}
Napi::Value CommunicatorObject::Kind(const Napi::CallbackInfo& info) {
  Check(info.Env(), "Communicator.kind");
  return Napi::String::New(info.Env(), comm_->kind());
}

Napi::Value CommunicatorObject::Barrier(const Napi::CallbackInfo& info) {
  Check(info.Env(), "Communicator.barrier");
  auto comm = comm_;
  return RunAsync<bool>(
      info.Env(), [comm]() { comm->barrier(); return true; },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
}

// allReduce(Float64Array) -> Promise<Float64Array>: the sums over the ranks.
Napi::Value CommunicatorObject::AllReduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Check(env, "Communicator.allReduce");
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw Napi::TypeError::New(env, "Communicator.allReduce(values: Float64Array)");
  Napi::Float64Array a = info[0].As<Napi::Float64Array>();
  auto values = std::make_shared<std::vector<double>>(a.Data(), a.Data() + a.ElementLength());
  auto comm = comm_;
  auto be = be_;
  return RunAsync<bool>(
      env,
      [comm, be, values]() {
        const std::size_t bytes = values->size() * sizeof(double);
        if (bytes == 0) return true;
        Buffer buf(be, bytes);
        be->upload(buf.data(), values->data(), bytes);
        comm->all_reduce(buf.view(DType::F64, static_cast<int64_t>(values->size())), static_cast<int64_t>(values->size()));
        comm->wait();
        be->download(values->data(), buf.data(), bytes);
        return true;
      },
      [values](Napi::Env e, bool&) -> Napi::Value {
        Napi::Float64Array out = Napi::Float64Array::New(e, values->size());
        std::memcpy(out.Data(), values->data(), values->size() * sizeof(double));
        return out;
      });
}

// abort(reason): the collectives in flight and later ones fail with `reason`, on every rank the
// communicator can tell. Callable while another call runs.
Napi::Value CommunicatorObject::Abort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string why = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "aborted";
  if (comm_) comm_->abort(why);
  return env.Undefined();
}

Napi::Value CommunicatorObject::Free(const Napi::CallbackInfo& info) {
  comm_.reset();  // trainers made with it keep theirs alive
  be_.reset();
  return info.Env().Undefined();
}
Napi::Value CommunicatorObject::IsFreed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !comm_); }

Napi::Function CommunicatorObject::Define(Napi::Env env) {
  Napi::Function f = DefineClass(env, "Communicator",
                                 {
                                     InstanceAccessor<&CommunicatorObject::Rank>("rank"),
                                     InstanceAccessor<&CommunicatorObject::WorldSize>("worldSize"),
                                     InstanceAccessor<&CommunicatorObject::Kind>("kind"),
                                     InstanceAccessor<&CommunicatorObject::IsFreed>("freed"),
                                     InstanceMethod<&CommunicatorObject::Barrier>("barrier"),
                                     InstanceMethod<&CommunicatorObject::AllReduce>("allReduce"),
                                     InstanceMethod<&CommunicatorObject::Abort>("abort"),
                                     InstanceMethod<&CommunicatorObject::Free>("free"),
                                 });
  constructor_ = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

namespace {

double ReadSeconds(Napi::Env env, const Napi::Value& v, const std::string& what) {
  const double ms = ReadNumber(env, v, what);
  if (!(ms > 0)) throw Napi::TypeError::New(env, what + " must be > 0");
  return ms / 1000.0;
}

Napi::Value ConnectCommunicator(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "connectCommunicator({kind, rank, worldSize, ...})");
  Napi::Object o = info[0].As<Napi::Object>();
  const std::string kind = ReadString(env, o.Get("kind"), "options.kind");
  const int world = static_cast<int>(ReadInt(env, o.Get("worldSize"), "options.worldSize", 1, 1 << 20));
  const int rank = static_cast<int>(ReadInt(env, o.Get("rank"), "options.rank", 0, world - 1));
  const double timeout = ReadSeconds(env, o.Get("timeoutMs"), "options.timeoutMs");
  struct Made {
    std::shared_ptr<Communicator> comm;
    std::shared_ptr<Backend> be;
  };
  std::function<Made()> make;
  if (kind == "host") {
    HostCommOptions h;
    h.name = ReadString(env, o.Get("name"), "options.name");
    h.rank = rank;
    h.world = world;
    h.timeout_s = timeout;
    if (!o.Get("heartbeatMs").IsUndefined()) h.heartbeat_s = ReadSeconds(env, o.Get("heartbeatMs"), "options.heartbeatMs");
    make = [h]() {
      auto be = backend_for(Device::CPU);
      return Made{make_host_communicator(be, h), be};
    };
  } else if (kind == "nccl") {
    NcclCommOptions n;
    n.rank = rank;
    n.world = world;
    n.timeout_s = timeout;
    Napi::Value id = o.Get("id");
    if (!id.IsTypedArray() || id.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
        id.As<Napi::Uint8Array>().ElementLength() != static_cast<size_t>(nccl::kUniqueIdBytes))
      throw Napi::TypeError::New(env, "options.id must be the Uint8Array(128) of ncclUniqueId() on rank 0");
    std::memcpy(n.id.internal, id.As<Napi::Uint8Array>().Data(), nccl::kUniqueIdBytes);
    make = [n]() {
      auto be = backend_for(Device::CUDA);
      return Made{make_nccl_communicator(be, n), be};
    };
  } else {
    throw Napi::TypeError::New(env, "options.kind must be 'host' or 'nccl' (got '" + kind + "')");
  }
  return RunAsync<Made>(env, make, [](Napi::Env e, Made& m) -> Napi::Value { return CommunicatorObject::Wrap(e, m.comm, m.be); });
}

Napi::Value HostCommunicatorName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), new_host_communicator_name());
}

Napi::Value NcclUniqueIdJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    bind_thread_to_device();
    const nccl::UniqueId id = new_nccl_id();
    Napi::Uint8Array out = Napi::Uint8Array::New(env, nccl::kUniqueIdBytes);
    std::memcpy(out.Data(), id.internal, nccl::kUniqueIdBytes);
    return out;
  });
}

Napi::Value SelectCudaDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int index = static_cast<int>(ReadInt(env, info[0], "index", 0, 1 << 16));
  return Guarded(env, [&]() -> Napi::Value {
    select_cuda_device(index);
    return env.Undefined();
  });
}

}  // namespace

void RegisterCommunicator(Napi::Env env, Napi::Object exports) {
  exports.Set("Communicator", CommunicatorObject::Define(env));
  exports.Set("connectCommunicator", Napi::Function::New(env, ConnectCommunicator, "connectCommunicator"));
  exports.Set("hostCommunicatorName", Napi::Function::New(env, HostCommunicatorName, "hostCommunicatorName"));
  exports.Set("ncclUniqueId", Napi::Function::New(env, NcclUniqueIdJs, "ncclUniqueId"));
  exports.Set("selectCudaDevice", Napi::Function::New(env, SelectCudaDevice, "selectCudaDevice"));
}

}  // namespace sppo::addon
