// The kernels on typed arrays: logprobForward, logprobBackward, maskedSequenceSum, sppoLoss.
// Each takes one options object and returns a Promise; the math runs on a libuv worker.
// Across the async boundary small inputs are copied, while logits and outputs (too large to
// copy, and written in place for backward) are held by persistent references so they cannot be
// collected while the worker uses their memory. TypeScript (src/kernels/) validates first; the
// checks here are the native layer's own guard on sizes and types.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "addon/args.h"
#include "addon/async.h"
#include "addon/device_lock.h"
#include "addon/registry.h"
#include "addon/staged.h"
#include "backend/backend.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "kernels/logprob.h"
#include "kernels/sppo_loss.h"

namespace sppo::addon {

namespace {

using Held = std::shared_ptr<Napi::Reference<Napi::Value>>;

Held hold(Napi::Value v) { return std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(v)); }

[[noreturn]] void type_error(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

Napi::Value field(const Napi::Object& o, const char* name) { return o.Get(name); }

int64_t int_field(const Napi::Object& o, const char* name) {
  Napi::Value v = field(o, name);
  if (!v.IsNumber()) type_error(o.Env(), std::string(name) + " must be a non-negative integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != static_cast<double>(static_cast<int64_t>(d)) || d > 9.0e15)
    type_error(o.Env(), std::string(name) + " must be a non-negative integer (got " + std::to_string(d) + ")");
  return static_cast<int64_t>(d);
}

std::string string_field(const Napi::Object& o, const char* name, const char* fallback) {
  Napi::Value v = field(o, name);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsString()) type_error(o.Env(), std::string(name) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

Device device_field(const Napi::Object& o) {
  std::string d = string_field(o, "device", "cpu");
  if (d == "cpu") return Device::CPU;
  if (d == "cuda") return Device::CUDA;
  type_error(o.Env(), "device must be 'cpu' or 'cuda' (got '" + d + "')");
}

DType dtype_field(const Napi::Object& o, const char* name) {
  std::string d = string_field(o, name, "f32");
  if (d == "f32") return DType::F32;
  if (d == "bf16") return DType::BF16;
  type_error(o.Env(), std::string(name) + " must be 'f32' or 'bf16' (got '" + d + "')");
}

// rows * vocab (or batch * seqLen) without overflow.
int64_t product(Napi::Env env, int64_t a, int64_t b, const char* what) {
  if (b != 0 && a > (int64_t{1} << 53) / b) type_error(env, std::string(what) + " is too large");
  return a * b;
}

// A typed array field of the expected kind and element count; returns its data pointer.
template <typename T>
T* typed_field(const Napi::Object& o, const char* name, napi_typedarray_type kind, const char* kind_name,
               int64_t expect_len, Napi::Value* value_out = nullptr) {
  Napi::Value v = field(o, name);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != kind)
    type_error(o.Env(), std::string(name) + " must be a " + kind_name);
  auto arr = v.As<Napi::TypedArray>();
  if (static_cast<int64_t>(arr.ElementLength()) != expect_len)
    throw Napi::RangeError::New(o.Env(), std::string(name) + " has " + std::to_string(arr.ElementLength()) +
                                             " elements, expected " + std::to_string(expect_len));
  if (value_out) *value_out = v;
  return reinterpret_cast<T*>(static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset());
}

bool has_field(const Napi::Object& o, const char* name) {
  Napi::Value v = o.Get(name);
  return !v.IsUndefined() && !v.IsNull();
}

template <typename T>
std::vector<T> copy_of(const T* p, int64_t n) {
  return std::vector<T>(p, p + n);
}

Napi::Object options(const Napi::CallbackInfo& info, const char* fn) {
  if (info.Length() < 1 || !info[0].IsObject()) type_error(info.Env(), std::string(fn) + " expects an options object");
  return info[0].As<Napi::Object>();
}

// The logits array: Float32Array for f32, Uint16Array of bf16 bits for bf16.
void* logits_field(const Napi::Object& o, DType dtype, int64_t count, Napi::Value* value_out) {
  if (dtype == DType::F32)
    return typed_field<float>(o, "logits", napi_float32_array, "Float32Array (dtype 'f32')", count, value_out);
  return typed_field<uint16_t>(o, "logits", napi_uint16_array, "Uint16Array of bfloat16 bits (dtype 'bf16')", count,
                               value_out);
}

Napi::TypedArray new_array(Napi::Env env, DType dtype, int64_t count) {
  if (dtype == DType::F32) return Napi::Float32Array::New(env, static_cast<size_t>(count));
  return Napi::Uint16Array::New(env, static_cast<size_t>(count));
}

void* data_of(Napi::TypedArray a) { return static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset(); }

// ---- logprobForward({logits, dtype, rows, vocab, labels, device}) -> {tokenLogp, lse} ----------
Napi::Value LogprobForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = options(info, "logprobForward");
  const int64_t N = int_field(o, "rows"), V = int_field(o, "vocab");
  product(env, N, V, "rows * vocab");
  const DType dtype = dtype_field(o, "dtype");
  const std::shared_ptr<Backend> be = backend_for(device_field(o));
  Napi::Value logits_v;
  void* logits = logits_field(o, dtype, N * V, &logits_v);
  auto labels = copy_of(typed_field<int32_t>(o, "labels", napi_int32_array, "Int32Array", N), N);
  Napi::Float32Array tl = Napi::Float32Array::New(env, static_cast<size_t>(N));
  Napi::Float32Array lse = Napi::Float32Array::New(env, static_cast<size_t>(N));
  Held keep_logits = hold(logits_v), keep_tl = hold(tl), keep_lse = hold(lse);
  float* tl_p = tl.Data();
  float* lse_p = lse.Data();
  return RunAsync<int>(
      env,
      [=]() {
        const auto device_lock = device_call_lock(*be);
        Staged x(be, logits, dtype, N * V, true), y(be, labels.data(), DType::I32, N, true);
        Staged t(be, tl_p, DType::F32, N, false), l(be, lse_p, DType::F32, N, false);
        be->logprob_forward(x.tensor(), N, V, y.tensor(), t.tensor(), l.tensor());
        be->synchronize();
        t.fetch();
        l.fetch();
        return 0;
      },
      [=](Napi::Env env, int&) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("tokenLogp", keep_tl->Value());
        r.Set("lse", keep_lse->Value());
        (void)keep_logits;
        return r;
      });
}

// ---- logprobBackward({logits, dtype, rows, vocab, labels, gradToken, lse?, inPlace?, gradDtype?,
//      device}) -> grad logits (the logits array itself when inPlace) ----------------------------
Napi::Value LogprobBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = options(info, "logprobBackward");
  const int64_t N = int_field(o, "rows"), V = int_field(o, "vocab");
  product(env, N, V, "rows * vocab");
  const DType dtype = dtype_field(o, "dtype");
  const std::shared_ptr<Backend> be = backend_for(device_field(o));
  const bool in_place = o.Get("inPlace").ToBoolean().Value();
  const DType gdtype = has_field(o, "gradDtype") ? dtype_field(o, "gradDtype") : dtype;
  if (in_place && gdtype != dtype) type_error(env, "inPlace needs gradDtype equal to dtype");
  Napi::Value logits_v;
  void* logits = logits_field(o, dtype, N * V, &logits_v);
  auto labels = copy_of(typed_field<int32_t>(o, "labels", napi_int32_array, "Int32Array", N), N);
  auto grad = copy_of(typed_field<float>(o, "gradToken", napi_float32_array, "Float32Array", N), N);
  std::vector<float> lse;
  const bool has_lse = has_field(o, "lse");
  if (has_lse) lse = copy_of(typed_field<float>(o, "lse", napi_float32_array, "Float32Array", N), N);
  Napi::Value out_v = in_place ? logits_v : Napi::Value(new_array(env, gdtype, N * V));
  void* out = in_place ? logits : data_of(out_v.As<Napi::TypedArray>());
  Held keep_logits = hold(logits_v), keep_out = hold(out_v);
  return RunAsync<int>(
      env,
      [=]() {
        const auto device_lock = device_call_lock(*be);
        Staged x(be, logits, dtype, N * V, true), y(be, labels.data(), DType::I32, N, true);
        Staged g(be, grad.data(), DType::F32, N, true);
        Staged l(be, has_lse ? lse.data() : nullptr, DType::F32, has_lse ? N : 0, true);
        Staged o(be, in_place ? nullptr : out, gdtype, N * V, false);
        const Tensor dst = in_place ? x.tensor() : o.tensor();
        be->logprob_backward(x.tensor(), N, V, y.tensor(), g.tensor(), l.tensor(), dst);
        be->synchronize();
        if (in_place) x.fetch();
        else o.fetch();
        return 0;
      },
      [=](Napi::Env, int&) -> Napi::Value {
        (void)keep_logits;
        return keep_out->Value();
      });
}

// ---- maskedSequenceSum({tokenLogp, mask, batch, seqLen, device}) -> Float32Array[batch] --------
Napi::Value MaskedSequenceSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = options(info, "maskedSequenceSum");
  const int64_t B = int_field(o, "batch"), T = int_field(o, "seqLen");
  product(env, B, T, "batch * seqLen");
  const std::shared_ptr<Backend> be = backend_for(device_field(o));
  auto tl = copy_of(typed_field<float>(o, "tokenLogp", napi_float32_array, "Float32Array", B * T), B * T);
  auto mask = copy_of(typed_field<uint8_t>(o, "mask", napi_uint8_array, "Uint8Array", B * T), B * T);
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(B));
  Held keep_out = hold(out);
  float* out_p = out.Data();
  return RunAsync<int>(
      env,
      [=]() {
        const auto device_lock = device_call_lock(*be);
        Staged t(be, tl.data(), DType::F32, B * T, true);
        Staged m(be, mask.data(), DType::U8, B * T, true);
        Staged o(be, out_p, DType::F32, B, false);
        be->masked_sequence_sum(t.tensor(), m.tensor(), B, T, o.tensor());
        be->synchronize();
        o.fetch();
        return 0;
      },
      [=](Napi::Env, int&) -> Napi::Value { return keep_out->Value(); });
}

// ---- sppoLoss({policyChosen, policyRejected, refChosen, refRejected, chosenProbs?,
//      chosenProbsWin?, chosenProbsLose?, beta, lossType, device}) ---------------------------------
struct LossResult {
  std::vector<float> losses, grad_chosen, grad_rejected, rewards_chosen, rewards_rejected;
  LossSummary summary;
};

Napi::Value SppoLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = options(info, "sppoLoss");
  const std::shared_ptr<Backend> be = backend_for(device_field(o));
  Napi::Value pc_v = o.Get("policyChosen");
  if (!pc_v.IsTypedArray() || pc_v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    type_error(env, "policyChosen must be a Float32Array");
  const int64_t B = static_cast<int64_t>(pc_v.As<Napi::TypedArray>().ElementLength());
  auto column = [&](const char* name) {
    return copy_of(typed_field<float>(o, name, napi_float32_array, "Float32Array", B), B);
  };
  auto optional = [&](const char* name) { return has_field(o, name) ? column(name) : std::vector<float>(); };
  auto pc = column("policyChosen"), pr = column("policyRejected"), rc = column("refChosen"), rr = column("refRejected");
  auto p = optional("chosenProbs"), pw = optional("chosenProbsWin"), pl = optional("chosenProbsLose");
  Napi::Value beta_v = o.Get("beta");
  if (!beta_v.IsNumber()) type_error(env, "beta must be a number");
  const double beta = beta_v.As<Napi::Number>().DoubleValue();
  LossType type;
  try {
    type = parse_loss_type(string_field(o, "lossType", "sppo"));
  } catch (const Error& e) {
    type_error(env, e.what());
  }
  return RunAsync<LossResult>(
      env,
      [=]() {
        const auto device_lock = device_call_lock(*be);
        LossResult r;
        for (auto* v : {&r.losses, &r.grad_chosen, &r.grad_rejected, &r.rewards_chosen, &r.rewards_rejected})
          v->resize(B);
        auto in_col = [&](const std::vector<float>& v) {
          return std::make_unique<Staged>(be, v.empty() ? nullptr : v.data(), DType::F32,
                                          static_cast<int64_t>(v.size()), true);
        };
        auto out_col = [&](std::vector<float>& v) { return std::make_unique<Staged>(be, v.data(), DType::F32, B, false); };
        auto spc = in_col(pc), spr = in_col(pr), src = in_col(rc), srr = in_col(rr), sp = in_col(p), spw = in_col(pw),
             spl = in_col(pl);
        auto ol = out_col(r.losses), ogc = out_col(r.grad_chosen), ogr = out_col(r.grad_rejected),
             orc = out_col(r.rewards_chosen), orr = out_col(r.rewards_rejected);
        double summary[5];
        Staged os(be, summary, DType::F64, 5, false);
        LossTensors lt{spc->tensor(), spr->tensor(), src->tensor(), srr->tensor(), sp->tensor(), spw->tensor(), spl->tensor()};
        LossResultTensors lr;
        lr.losses = ol->tensor();
        lr.grad_chosen = ogc->tensor();
        lr.grad_rejected = ogr->tensor();
        lr.rewards_chosen = orc->tensor();
        lr.rewards_rejected = orr->tensor();
        lr.summary = os.tensor();
        be->sppo_loss(type, beta, B, lt, lr);
        be->synchronize();
        for (auto* o : {ol.get(), ogc.get(), ogr.get(), orc.get(), orr.get()}) o->fetch();
        os.fetch();
        r.summary = LossSummary{summary[0], summary[1], summary[2], summary[3], summary[4]};
        return r;
      },
      [](Napi::Env env, LossResult& r) -> Napi::Value {
        auto arr = [&](const std::vector<float>& v) {
          Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
          if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * 4);
          return a;
        };
        Napi::Object o = Napi::Object::New(env);
        o.Set("losses", arr(r.losses));
        o.Set("gradChosen", arr(r.grad_chosen));
        o.Set("gradRejected", arr(r.grad_rejected));
        o.Set("rewardsChosen", arr(r.rewards_chosen));
        o.Set("rewardsRejected", arr(r.rewards_rejected));
        Napi::Object s = Napi::Object::New(env);
        SetLossSummary(s, r.summary);
        o.Set("summary", s);
        return o;
      });
}

// Wraps a binding so sppo::Error from synchronous checks (backend_for) becomes a JS Error.
template <Napi::Value (*Fn)(const Napi::CallbackInfo&)>
Napi::Value Checked(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&] { return Fn(info); });
}

}  // namespace

void RegisterKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("logprobForward", Napi::Function::New(env, Checked<LogprobForward>, "logprobForward"));
  exports.Set("logprobBackward", Napi::Function::New(env, Checked<LogprobBackward>, "logprobBackward"));
  exports.Set("maskedSequenceSum", Napi::Function::New(env, Checked<MaskedSequenceSum>, "maskedSequenceSum"));
  exports.Set("sppoLoss", Napi::Function::New(env, Checked<SppoLoss>, "sppoLoss"));
  exports.Set("lossTypes", [&] {
    Napi::Array a = Napi::Array::New(env);
    uint32_t i = 0;
    for (LossType t : kLossTypes) a.Set(i++, loss_type_name(t));
    return a;
  }());
}

}  // namespace sppo::addon
