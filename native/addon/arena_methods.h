// The JS methods that Model and PairRM share over their weight arena: params() (the layout's
// {name, shape, offset} list), initRandom(seed, std?) and loadTensors(entries). Templates over the
// object's state (addon/call_state.h), whose model has layout(), backend(), param(name) and
// init_random(seed, std); `what` names the method in errors ("Model.loadTensors").
#pragma once
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "addon/async.h"
#include "addon/call_state.h"
#include "addon/device_lock.h"
#include "addon/model_args.h"
#include "core/error.h"
#include "io/arena_io.h"
#include "io/tensor_file.h"
#include "model/param_layout.h"

namespace sppo::addon {

// [{name, shape, offset}] of a layout's parameters (arena_methods.cpp).
Napi::Array ParamsToJs(Napi::Env env, const std::vector<ParamSpec>& params);

template <typename State>
Napi::Value ParamsMethod(const Napi::CallbackInfo& info, const std::shared_ptr<State>& state, const std::string& what) {
  Napi::Env env = info.Env();
  CheckUsableState(env, state, what);
  return ParamsToJs(env, state->model->layout().params());
}

// initRandom(seed, std = 0.02): resolves once every parameter is drawn.
template <typename State>
Napi::Value InitRandomMethod(const Napi::CallbackInfo& info, const std::shared_ptr<State>& state,
                             const std::string& what) {
  Napi::Env env = info.Env();
  const auto seed = static_cast<uint64_t>(ReadInt(env, info[0], "seed", 0, int64_t{1} << 53));
  const double stddev = info.Length() > 1 && !info[1].IsUndefined() ? ReadNumber(env, info[1], "std") : 0.02;
  auto lease = AcquireState(env, state, what);
  auto st = state;
  return RunAsync<bool>(
      env,
      [st, lease, seed, stddev]() {
        const auto device_lock = device_call_lock(st->model->backend());
        st->model->init_random(seed, stddev);
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
}

// One tensor's byte range in a safetensors file, as TypeScript checked it against the header.
struct LoadEntry {
  std::string name, file;
  uint64_t offset = 0, nbytes = 0;
  DType dtype = DType::F32;
};

// loadTensors([{name, file, offset, nbytes, dtype}]): every parameter named is filled.
template <typename State>
Napi::Value LoadTensorsMethod(const Napi::CallbackInfo& info, const std::shared_ptr<State>& state,
                              const std::string& what) {
  Napi::Env env = info.Env();
  CheckUsableState(env, state, what);
  if (info.Length() < 1 || !info[0].IsArray())
    throw Napi::TypeError::New(env, what + "(entries: {name, file, offset, nbytes, dtype}[])");
  Napi::Array arr = info[0].As<Napi::Array>();
  auto entries = std::make_shared<std::vector<LoadEntry>>();
  constexpr int64_t kMax = int64_t{1} << 53;
  const auto& layout = state->model->layout();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const std::string at = "entries[" + std::to_string(i) + "]";
    Napi::Value v = arr.Get(i);
    if (!v.IsObject()) throw Napi::TypeError::New(env, at + " must be an object");
    Napi::Object o = v.As<Napi::Object>();
    LoadEntry e;
    e.name = ReadString(env, o.Get("name"), at + ".name");
    e.file = ReadString(env, o.Get("file"), at + ".file");
    e.offset = static_cast<uint64_t>(ReadInt(env, o.Get("offset"), at + ".offset", 0, kMax));
    e.nbytes = static_cast<uint64_t>(ReadInt(env, o.Get("nbytes"), at + ".nbytes", 0, kMax));
    try {
      e.dtype = io::parse_tensor_dtype(ReadString(env, o.Get("dtype"), at + ".dtype"), e.file + ": tensor '" + e.name + "'");
    } catch (const sppo::Error& err) {
      throw Napi::TypeError::New(env, err.what());
    }
    const int pi = layout.find(e.name);
    if (pi < 0)
      throw Napi::Error::New(env, e.file + ": tensor '" + e.name + "' is not a parameter of this " + State::kSubject);
    const int64_t numel = layout[pi].numel;
    if (e.nbytes != static_cast<uint64_t>(numel) * dtype_size(e.dtype))
      throw Napi::Error::New(env, e.file + ": tensor '" + e.name + "' has " + std::to_string(e.nbytes) +
                                      " bytes, the parameter needs " + std::to_string(numel) + " elements");
    entries->push_back(std::move(e));
  }
  auto lease = AcquireState(env, state, what);
  auto st = state;
  return RunAsync<bool>(
      env,
      [st, lease, entries]() {
        const auto device_lock = device_call_lock(st->model->backend());
        for (const auto& e : *entries)
          io::load_into(e.file, e.offset, e.nbytes, e.dtype, st->model->backend(), st->model->param(e.name), e.name);
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
}

}  // namespace sppo::addon
