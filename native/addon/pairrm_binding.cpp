// The PairRM class: new PairRM(config, {device?, precision?}), params(), initRandom(seed, std?),
// loadTensors(entries), compare(batch), hiddenStates(batch), memoryPlan(tokens, sequences),
// cancel(), free(). A batch is {tokens: Int32Array (packed), lengths: Int32Array [S], slots:
// Int32Array [S * 3]}; TypeScript builds it (src/pairrm/), the core checks ids and slots again.
#include <cstring>
#include <vector>

#include "addon/arena_methods.h"
#include "addon/args.h"
#include "addon/async.h"
#include "addon/device_lock.h"
#include "addon/model_args.h"
#include "addon/pairrm_object.h"
#include "addon/registry.h"
#include "backend/backend.h"
#include "core/error.h"

namespace sppo::addon {

namespace {

[[noreturn]] void type_error(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

}  // namespace

PairRmConfig ReadPairRmConfig(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) type_error(env, "config must be an object");
  Napi::Object o = v.As<Napi::Object>();
  constexpr int64_t kBig = int64_t{1} << 40;
  auto integer = [&](const char* key, int64_t lo) {
    Napi::Value f = o.Get(key);
    if (f.IsUndefined()) type_error(env, std::string("config.") + key + " is required");
    return ReadInt(env, f, std::string("config.") + key, lo, kBig);
  };
  auto boolean = [&](const char* key) {
    Napi::Value f = o.Get(key);
    if (!f.IsBoolean()) type_error(env, std::string("config.") + key + " must be a boolean");
    return f.As<Napi::Boolean>().Value();
  };
  PairRmConfig c;
  c.vocab_size = integer("vocabSize", 1);
  c.hidden_size = integer("hiddenSize", 1);
  c.intermediate_size = integer("intermediateSize", 1);
  c.num_layers = integer("numLayers", 1);
  c.num_heads = integer("numHeads", 1);
  c.head_dim = integer("headDim", 1);
  c.layer_norm_eps = ReadNumber(env, o.Get("layerNormEps"), "config.layerNormEps");
  c.position_buckets = integer("positionBuckets", 0);
  c.max_relative_positions = integer("maxRelativePositions", 1);
  c.c2p = boolean("c2p");
  c.p2c = boolean("p2c");
  c.norm_rel_embeddings = boolean("normRelEmbeddings");
  c.num_tasks = integer("numTasks", 1);
  return c;
}

namespace {

template <typename T, napi_typedarray_type Kind>
std::vector<T> ReadArray(Napi::Env env, const Napi::Value& v, const std::string& what, const char* type) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != Kind) type_error(env, what + " must be an " + type);
  auto a = v.As<Napi::TypedArrayOf<T>>();
  std::vector<T> out(a.ElementLength());
  if (!out.empty()) std::memcpy(out.data(), a.Data(), out.size() * sizeof(T));
  return out;
}

// A packed batch copied into native vectors (queued work never touches JS memory).
struct HostPairs {
  std::vector<int32_t> tokens, lengths, slots;
  PairBatch view() const {
    return PairBatch{static_cast<int64_t>(lengths.size()), lengths.data(), tokens.data(), slots.data()};
  }
};

HostPairs ReadPairs(Napi::Env env, const Napi::Value& v, const char* what) {
  const std::string w = what;
  if (!v.IsObject()) type_error(env, w + " must be an object {tokens, lengths, slots}");
  Napi::Object o = v.As<Napi::Object>();
  HostPairs h;
  h.tokens = ReadArray<int32_t, napi_int32_array>(env, o.Get("tokens"), w + ".tokens", "Int32Array");
  h.lengths = ReadArray<int32_t, napi_int32_array>(env, o.Get("lengths"), w + ".lengths", "Int32Array");
  h.slots = ReadArray<int32_t, napi_int32_array>(env, o.Get("slots"), w + ".slots", "Int32Array");
  if (h.lengths.empty()) type_error(env, w + ".lengths is empty (a batch needs at least one sequence)");
  int64_t total = 0;
  for (size_t i = 0; i < h.lengths.size(); ++i) {
    if (h.lengths[i] < 1) type_error(env, w + ".lengths[" + std::to_string(i) + "] must be >= 1");
    total += h.lengths[i];
  }
  if (static_cast<int64_t>(h.tokens.size()) != total)
    type_error(env, w + ".tokens has " + std::to_string(h.tokens.size()) + " ids but the lengths add up to " +
                        std::to_string(total));
  if (h.slots.size() != 3 * h.lengths.size())
    type_error(env, w + ".slots has " + std::to_string(h.slots.size()) + " entries, expected 3 per sequence (" +
                        std::to_string(3 * h.lengths.size()) + ")");
  return h;
}

Napi::Float64Array ToF64(Napi::Env env, const std::vector<double>& v) {
  Napi::Float64Array a = Napi::Float64Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(double));
  return a;
}

}  // namespace

PairRmObject::PairRmObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PairRmObject>(info) {
  Napi::Env env = info.Env();
  if (!info.IsConstructCall()) type_error(env, "PairRM must be called with new");
  const PairRmConfig cfg = ReadPairRmConfig(env, info[0]);
  const ModelOptions opts = ReadModelOptions(env, info);
  device_ = opts.device;
  try {
    auto st = std::make_shared<PairRmState>();
    st->model = std::make_shared<PairRmModel>(backend_for(device_ == "cpu" ? sppo::Device::CPU : sppo::Device::CUDA),
                                              cfg, opts.precision);
    state_ = std::move(st);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Value PairRmObject::Params(const Napi::CallbackInfo& info) { return ParamsMethod(info, state_, "PairRM.params"); }

Napi::Value PairRmObject::InitRandom(const Napi::CallbackInfo& info) {
  return InitRandomMethod(info, state_, "PairRM.initRandom");
}

// loadTensors([{name, file, offset, nbytes, dtype}]): ranges TypeScript checked against config.json.
Napi::Value PairRmObject::LoadTensors(const Napi::CallbackInfo& info) {
  return LoadTensorsMethod(info, state_, "PairRM.loadTensors");
}

Napi::Value PairRmObject::Compare(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsableState(env, state_, "PairRM.compare");
  auto batch = std::make_shared<HostPairs>(ReadPairs(env, info[0], "batch"));
  Guarded(env, [&]() -> Napi::Value {
    state_->model->check_batch(batch->view(), "PairRM.compare");
    return env.Undefined();
  });
  auto lease = AcquireState(env, state_, "PairRM.compare");
  auto st = state_;
  return RunAsync<std::vector<double>>(
      env,
      [st, lease, batch]() {
        const auto device_lock = device_call_lock(st->model->backend());
        std::vector<double> out(batch->lengths.size());
        st->model->set_cancel(lease->cancel_point());
        st->model->compare(batch->view(), Tensor(out.data(), DType::F64, static_cast<int64_t>(out.size())));
        return out;
      },
      [](Napi::Env e, std::vector<double>& out) -> Napi::Value { return ToF64(e, out); });
}

Napi::Value PairRmObject::HiddenStates(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsableState(env, state_, "PairRM.hiddenStates");
  auto batch = std::make_shared<HostPairs>(ReadPairs(env, info[0], "batch"));
  Guarded(env, [&]() -> Napi::Value {
    state_->model->check_batch(batch->view(), "PairRM.hiddenStates");
    return env.Undefined();
  });
  const int64_t H = state_->model->config().hidden_size;
  auto lease = AcquireState(env, state_, "PairRM.hiddenStates");
  auto st = state_;
  return RunAsync<std::vector<double>>(
      env,
      [st, lease, batch, H]() {
        const auto device_lock = device_call_lock(st->model->backend());
        std::vector<double> out(batch->tokens.size() * static_cast<size_t>(H));
        st->model->set_cancel(lease->cancel_point());
        st->model->hidden_states(batch->view(), Tensor(out.data(), DType::F64, static_cast<int64_t>(out.size())));
        return out;
      },
      [](Napi::Env e, std::vector<double>& out) -> Napi::Value { return ToF64(e, out); });
}

Napi::Value PairRmObject::MemoryPlan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsableState(env, state_, "PairRM.memoryPlan");
  const int64_t tokens = ReadInt(env, info[0], "tokens", 1, int64_t{1} << 31);
  const int64_t seqs = ReadInt(env, info[1], "sequences", 1, int64_t{1} << 31);
  const PairRmMemoryPlan p = state_->model->memory_plan(tokens, seqs);
  Napi::Object o = Napi::Object::New(env);
  o.Set("weights", static_cast<double>(p.weights));
  o.Set("activations", static_cast<double>(p.activations));
  o.Set("total", static_cast<double>(p.total()));
  return o;
}

Napi::Value PairRmObject::Cancel(const Napi::CallbackInfo& info) {
  if (state_) state_->cancel.cancel();
  return info.Env().Undefined();
}

Napi::Value PairRmObject::Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!state_) return env.Undefined();
  if (state_->busy.load()) throw Napi::Error::New(env, "PairRM.free: a call on this model is still running (await it first)");
  state_.reset();
  return env.Undefined();
}

Napi::Value PairRmObject::IsBusy(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), state_ && state_->busy.load());
}
Napi::Value PairRmObject::IsFreed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }
Napi::Value PairRmObject::Device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), device_); }

Napi::Function PairRmObject::Define(Napi::Env env) {
  return DefineClass(env, "PairRM",
                     {
                         InstanceMethod<&PairRmObject::Params>("params"),
                         InstanceMethod<&PairRmObject::InitRandom>("initRandom"),
                         InstanceMethod<&PairRmObject::LoadTensors>("loadTensors"),
                         InstanceMethod<&PairRmObject::Compare>("compare"),
                         InstanceMethod<&PairRmObject::HiddenStates>("hiddenStates"),
                         InstanceMethod<&PairRmObject::MemoryPlan>("memoryPlan"),
                         InstanceMethod<&PairRmObject::Cancel>("cancel"),
                         InstanceMethod<&PairRmObject::Free>("free"),
                         InstanceAccessor<&PairRmObject::IsBusy>("busy"),
                         InstanceAccessor<&PairRmObject::IsFreed>("freed"),
                         InstanceAccessor<&PairRmObject::Device>("device"),
                     });
}

void RegisterPairRm(Napi::Env env, Napi::Object exports) { exports.Set("PairRM", PairRmObject::Define(env)); }

}  // namespace sppo::addon
