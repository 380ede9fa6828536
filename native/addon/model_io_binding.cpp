// Model.loadTensors / Model.saveTensors: parameter bytes in and out of safetensors files whose
// headers TypeScript has parsed (load) or built (save).
#include "addon/arena_methods.h"
#include "addon/async.h"
#include "addon/device_lock.h"
#include "addon/model_args.h"
#include "addon/model_object.h"
#include "core/error.h"
#include "io/arena_io.h"
#include "io/tensor_file.h"

namespace sppo::addon {

// loadTensors([{name, file, offset, nbytes, dtype}]): every parameter named is filled.
Napi::Value ModelObject::LoadTensors(const Napi::CallbackInfo& info) {
  if (state_) state_->check_weights_writable(info.Env(), "Model.loadTensors");
  return LoadTensorsMethod(info, state_, "Model.loadTensors");
}

// saveTensors(file, headerJson, names[], dtype, dataBytes): the header describes `names` in order.
Napi::Value ModelObject::SaveTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, state_, "Model.saveTensors");
  const std::string file = ReadString(env, info[0], "file");
  const std::string header = ReadString(env, info[1], "headerJson");
  if (info.Length() < 3 || !info[2].IsArray()) throw Napi::TypeError::New(env, "argument names must be an array");
  DType dtype;
  try {
    dtype = io::parse_tensor_dtype(ReadString(env, info[3], "dtype"), "saveTensors");
  } catch (const sppo::Error& err) {
    throw Napi::TypeError::New(env, err.what());
  }
  const auto bytes = static_cast<uint64_t>(ReadInt(env, info[4], "dataBytes", 0, int64_t{1} << 53));
  Napi::Array names = info[2].As<Napi::Array>();
  auto list = std::make_shared<std::vector<std::string>>();
  for (uint32_t i = 0; i < names.Length(); ++i) {
    list->push_back(ReadString(env, names.Get(i), "names[" + std::to_string(i) + "]"));
    if (state_->model->layout().find(list->back()) < 0)
      throw Napi::Error::New(env, "saveTensors: no parameter named '" + list->back() + "'");
  }
  auto lease = Acquire(env, state_, "Model.saveTensors");
  auto st = state_;
  return RunAsync<bool>(
      env,
      [st, lease, file, header, list, dtype, bytes]() {
        const auto device_lock = device_call_lock(st->model->backend());
        std::vector<Tensor> ts;
        for (const auto& n : *list) ts.push_back(st->model->param(n));
        const io::HostFloats host = io::host_floats(st->model->backend(), ts);
        io::write_safetensors(file, header, host.sources, dtype, bytes);
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
}

}  // namespace sppo::addon
