// Model.loadTensors / Model.saveTensors: parameter bytes in and out of safetensors files whose
// headers TypeScript has parsed (load) or built (save).
#include "addon/async.h"
#include "addon/model_args.h"
#include "addon/model_object.h"
#include "core/error.h"
#include "io/tensor_file.h"

namespace sppo::addon {

namespace {
struct LoadEntry {
  std::string name, file;
  uint64_t offset = 0, nbytes = 0;
  DType dtype = DType::F32;
};
}  // namespace

// loadTensors([{name, file, offset, nbytes, dtype}]): every parameter named is filled.
Napi::Value ModelObject::LoadTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "loadTensors");
  if (info.Length() < 1 || !info[0].IsArray())
    throw Napi::TypeError::New(env, "Model.loadTensors(entries: {name, file, offset, nbytes, dtype}[])");
  Napi::Array arr = info[0].As<Napi::Array>();
  auto entries = std::make_shared<std::vector<LoadEntry>>();
  constexpr int64_t kMax = int64_t{1} << 53;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const std::string what = "entries[" + std::to_string(i) + "]";
    Napi::Value v = arr.Get(i);
    if (!v.IsObject()) throw Napi::TypeError::New(env, what + " must be an object");
    Napi::Object o = v.As<Napi::Object>();
    LoadEntry e;
    e.name = ReadString(env, o.Get("name"), what + ".name");
    e.file = ReadString(env, o.Get("file"), what + ".file");
    e.offset = static_cast<uint64_t>(ReadInt(env, o.Get("offset"), what + ".offset", 0, kMax));
    e.nbytes = static_cast<uint64_t>(ReadInt(env, o.Get("nbytes"), what + ".nbytes", 0, kMax));
    try {
      e.dtype = io::parse_tensor_dtype(ReadString(env, o.Get("dtype"), what + ".dtype"), e.file + ": tensor '" + e.name + "'");
    } catch (const sppo::Error& err) {
      throw Napi::TypeError::New(env, err.what());
    }
    ParamRef* p = state_->model->find_param(e.name);
    if (!p) throw Napi::Error::New(env, e.file + ": tensor '" + e.name + "' is not a parameter of this model");
    if (e.nbytes != static_cast<uint64_t>(p->numel()) * dtype_size(e.dtype))
      throw Napi::Error::New(env, e.file + ": tensor '" + e.name + "' has " + std::to_string(e.nbytes) +
                                      " bytes, the parameter needs " + std::to_string(p->numel()) + " elements");
    entries->push_back(std::move(e));
  }
  auto lease = Acquire(env, "loadTensors");
  auto st = state_;
  return RunAsync<bool>(
      env,
      [st, lease, entries]() {
        for (const auto& e : *entries) {
          ParamRef* p = st->model->find_param(e.name);
          SPPO_CHECK(p != nullptr, "parameter '", e.name, "' disappeared");
          io::read_tensor(e.file, e.offset, e.nbytes, e.dtype, p->data, p->numel(), e.name);
        }
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
}

// saveTensors(file, headerJson, names[], dtype, dataBytes): the header describes `names` in order.
Napi::Value ModelObject::SaveTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "saveTensors");
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
    if (!state_->model->find_param(list->back()))
      throw Napi::Error::New(env, "saveTensors: no parameter named '" + list->back() + "'");
  }
  auto lease = Acquire(env, "saveTensors");
  auto st = state_;
  return RunAsync<bool>(
      env,
      [st, lease, file, header, list, dtype, bytes]() {
        std::vector<io::TensorSource> src;
        for (const auto& n : *list) {
          ParamRef* p = st->model->find_param(n);
          src.push_back({p->data, p->numel()});
        }
        io::write_safetensors(file, header, src, dtype, bytes);
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
}

}  // namespace sppo::addon
