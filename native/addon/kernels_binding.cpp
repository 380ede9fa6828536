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
#include "addon/registry.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "kernels/logprob.h"
#include "kernels/sppo_loss.h"
#ifdef SPPO_WITH_CUDA
#include "kernels/cuda/device_buffer.h"
#endif

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
  const Device device = device_field(o);
  require_device(device);
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
        if (device == Device::CPU) {
          cpu::logprob_forward(logits, dtype, N, V, labels.data(), tl_p, lse_p);
        } else {
#ifdef SPPO_WITH_CUDA
          cuda::DeviceBuffer d_logits(logits, static_cast<size_t>(N * V) * dtype_size(dtype));
          cuda::DeviceBuffer d_labels(labels.data(), labels.size() * 4), d_tl(N * 4), d_lse(N * 4);
          cuda::logprob_forward(d_logits.get(), dtype, N, V, d_labels.as<int32_t>(), d_tl.as<float>(),
                                d_lse.as<float>(), nullptr);
          d_tl.download(tl_p, N * 4);
          d_lse.download(lse_p, N * 4);
#endif
        }
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
  const Device device = device_field(o);
  require_device(device);
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
        const float* lse_p = has_lse ? lse.data() : nullptr;
        if (device == Device::CPU) {
          cpu::logprob_backward(logits, dtype, N, V, labels.data(), grad.data(), lse_p, out, gdtype);
        } else {
#ifdef SPPO_WITH_CUDA
          const size_t in_bytes = static_cast<size_t>(N * V) * dtype_size(dtype);
          const size_t out_bytes = static_cast<size_t>(N * V) * dtype_size(gdtype);
          cuda::DeviceBuffer d_logits(logits, in_bytes);
          cuda::DeviceBuffer d_labels(labels.data(), N * 4), d_grad(grad.data(), N * 4);
          cuda::DeviceBuffer d_lse(lse_p, has_lse ? N * 4 : 0);
          cuda::DeviceBuffer d_out(in_place ? 0 : out_bytes);
          void* dst = in_place ? d_logits.get() : d_out.get();
          cuda::logprob_backward(d_logits.get(), dtype, N, V, d_labels.as<int32_t>(), d_grad.as<float>(),
                                 has_lse ? d_lse.as<float>() : nullptr, dst, gdtype, nullptr);
          (in_place ? d_logits : d_out).download(out, out_bytes);
#endif
        }
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
  const Device device = device_field(o);
  require_device(device);
  auto tl = copy_of(typed_field<float>(o, "tokenLogp", napi_float32_array, "Float32Array", B * T), B * T);
  auto mask = copy_of(typed_field<uint8_t>(o, "mask", napi_uint8_array, "Uint8Array", B * T), B * T);
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(B));
  Held keep_out = hold(out);
  float* out_p = out.Data();
  return RunAsync<int>(
      env,
      [=]() {
        if (device == Device::CPU) {
          cpu::masked_sequence_sum(tl.data(), mask.data(), B, T, out_p);
        } else {
#ifdef SPPO_WITH_CUDA
          cuda::DeviceBuffer d_tl(tl.data(), tl.size() * 4), d_mask(mask.data(), mask.size()), d_out(B * 4);
          cuda::masked_sequence_sum(d_tl.as<float>(), d_mask.as<uint8_t>(), B, T, d_out.as<float>(), nullptr);
          d_out.download(out_p, B * 4);
#endif
        }
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
  const Device device = device_field(o);
  require_device(device);
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
        LossResult r;
        for (auto* v : {&r.losses, &r.grad_chosen, &r.grad_rejected, &r.rewards_chosen, &r.rewards_rejected})
          v->resize(B);
        LossInputs in;
        in.B = B;
        in.beta = beta;
        in.type = type;
        auto ptr = [](const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); };
        if (device == Device::CPU) {
          in.policy_chosen = ptr(pc);
          in.policy_rejected = ptr(pr);
          in.ref_chosen = ptr(rc);
          in.ref_rejected = ptr(rr);
          in.chosen_probs = ptr(p);
          in.chosen_probs_win = ptr(pw);
          in.chosen_probs_lose = ptr(pl);
          r.summary = cpu::sppo_loss(in, {r.losses.data(), r.grad_chosen.data(), r.grad_rejected.data(),
                                          r.rewards_chosen.data(), r.rewards_rejected.data()});
        } else {
#ifdef SPPO_WITH_CUDA
          auto up = [](const std::vector<float>& v) { return cuda::DeviceBuffer(v.empty() ? nullptr : v.data(), v.size() * 4); };
          cuda::DeviceBuffer d_pc = up(pc), d_pr = up(pr), d_rc = up(rc), d_rr = up(rr), d_p = up(p), d_pw = up(pw),
                             d_pl = up(pl);
          cuda::DeviceBuffer outs[5] = {cuda::DeviceBuffer(B * 4), cuda::DeviceBuffer(B * 4), cuda::DeviceBuffer(B * 4),
                                        cuda::DeviceBuffer(B * 4), cuda::DeviceBuffer(B * 4)};
          auto dptr = [](const cuda::DeviceBuffer& b) { return b.bytes() ? b.as<float>() : nullptr; };
          in.policy_chosen = dptr(d_pc);
          in.policy_rejected = dptr(d_pr);
          in.ref_chosen = dptr(d_rc);
          in.ref_rejected = dptr(d_rr);
          in.chosen_probs = dptr(d_p);
          in.chosen_probs_win = dptr(d_pw);
          in.chosen_probs_lose = dptr(d_pl);
          r.summary = cuda::sppo_loss(in, {outs[0].as<float>(), outs[1].as<float>(), outs[2].as<float>(),
                                           outs[3].as<float>(), outs[4].as<float>()}, nullptr);
          outs[0].download(r.losses.data(), B * 4);
          outs[1].download(r.grad_chosen.data(), B * 4);
          outs[2].download(r.grad_rejected.data(), B * 4);
          outs[3].download(r.rewards_chosen.data(), B * 4);
          outs[4].download(r.rewards_rejected.data(), B * 4);
#endif
        }
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

// Wraps a binding so sppo::Error from synchronous checks (require_device) becomes a JS Error.
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
    Napi::Array a = Napi::Array::New(env, 5);
    for (int i = 0; i < 5; ++i) a.Set(static_cast<uint32_t>(i), loss_type_name(static_cast<LossType>(i)));
    return a;
  }());
}

}  // namespace sppo::addon
