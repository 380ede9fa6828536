#include "addon/model_args.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace sppo::addon {

namespace {

[[noreturn]] void type_error(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

Napi::Value Field(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what, bool required) {
  Napi::Value v = o.Get(key);
  if (required && (v.IsUndefined() || v.IsNull())) type_error(env, what + "." + key + " is required");
  return v;
}

template <typename T, napi_typedarray_type Kind>
std::vector<T> ReadTyped(Napi::Env env, const Napi::Value& v, size_t n, const std::string& what, const char* type) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != Kind)
    type_error(env, what + " must be a " + type);
  auto arr = v.As<Napi::TypedArrayOf<T>>();
  if (arr.ElementLength() != n)
    type_error(env, what + " has " + std::to_string(arr.ElementLength()) + " elements, expected " + std::to_string(n));
  std::vector<T> out(n);
  if (n > 0) std::memcpy(out.data(), arr.Data(), n * sizeof(T));
  return out;
}

}  // namespace

TokenBatch HostBatch::view() const {
  TokenBatch b;
  b.B = B;
  b.T = T;
  b.tokens = tokens.data();
  b.attention_mask = attention_mask.data();
  b.response_mask = response_mask.empty() ? nullptr : response_mask.data();
  return b;
}

double ReadNumber(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) type_error(env, what + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) type_error(env, what + " must be finite");
  return d;
}

int64_t ReadInt(Napi::Env env, const Napi::Value& v, const std::string& what, int64_t lo, int64_t hi) {
  double d = ReadNumber(env, v, what);
  if (d != std::floor(d) || d < static_cast<double>(lo) || d > static_cast<double>(hi))
    type_error(env, what + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "] (got " +
                        std::to_string(d) + ")");
  return static_cast<int64_t>(d);
}

std::string ReadString(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsString()) type_error(env, what + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

std::vector<float> ReadFloats(Napi::Env env, const Napi::Value& v, size_t n, const std::string& what) {
  return ReadTyped<float, napi_float32_array>(env, v, n, what, "Float32Array");
}

HostBatch ReadBatch(Napi::Env env, const Napi::Value& v, const std::string& what, bool need_response,
                    int64_t vocab_size) {
  if (!v.IsObject()) type_error(env, what + " must be an object {tokens, attentionMask, B, T}");
  Napi::Object o = v.As<Napi::Object>();
  HostBatch h;
  constexpr int64_t kMaxDim = int64_t{1} << 24;
  h.B = ReadInt(env, Field(env, o, "B", what, true), what + ".B", 1, kMaxDim);
  h.T = ReadInt(env, Field(env, o, "T", what, true), what + ".T", 1, kMaxDim);
  const size_t n = static_cast<size_t>(h.B * h.T);
  h.tokens = ReadTyped<int32_t, napi_int32_array>(env, Field(env, o, "tokens", what, true), n, what + ".tokens",
                                                  "Int32Array");
  h.attention_mask = ReadTyped<uint8_t, napi_uint8_array>(env, Field(env, o, "attentionMask", what, true), n,
                                                          what + ".attentionMask", "Uint8Array");
  if (need_response) {
    h.response_mask = ReadTyped<uint8_t, napi_uint8_array>(env, Field(env, o, "responseMask", what, true), n,
                                                           what + ".responseMask", "Uint8Array");
  }
  for (size_t i = 0; i < n; ++i) {
    if (h.tokens[i] < 0 || h.tokens[i] >= vocab_size)
      type_error(env, what + ".tokens[" + std::to_string(i) + "] = " + std::to_string(h.tokens[i]) +
                          " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
    if (h.attention_mask[i] > 1) type_error(env, what + ".attentionMask must hold 0 or 1");
    if (need_response && (h.response_mask[i] > 1 || (h.response_mask[i] && !h.attention_mask[i])))
      type_error(env, what + ".responseMask must hold 0 or 1, and 1 only on real tokens");
  }
  return h;
}

LlamaConfig ReadLlamaConfig(Napi::Env env, const Napi::Value& v) {
  const std::string what = "config";
  if (!v.IsObject()) type_error(env, "config must be an object");
  Napi::Object o = v.As<Napi::Object>();
  constexpr int64_t kBig = int64_t{1} << 40;
  auto integer = [&](const char* key, int64_t lo) {
    return ReadInt(env, Field(env, o, key, what, true), what + "." + key, lo, kBig);
  };
  auto number = [&](const char* key, double dflt) {
    Napi::Value f = o.Get(key);
    if (f.IsUndefined()) return dflt;
    return ReadNumber(env, f, what + "." + key);
  };
  auto boolean = [&](const char* key) {
    Napi::Value f = o.Get(key);
    if (f.IsUndefined()) return false;
    if (!f.IsBoolean()) type_error(env, what + "." + key + " must be a boolean");
    return f.As<Napi::Boolean>().Value();
  };
  LlamaConfig c;
  c.vocab_size = integer("vocabSize", 1);
  c.hidden_size = integer("hiddenSize", 1);
  c.intermediate_size = integer("intermediateSize", 1);
  c.num_layers = integer("numLayers", 1);
  c.num_heads = integer("numHeads", 1);
  c.num_kv_heads = integer("numKvHeads", 1);
  c.head_dim = integer("headDim", 1);
  c.rms_norm_eps = number("rmsNormEps", c.rms_norm_eps);
  c.rope_theta = number("ropeTheta", c.rope_theta);
  Napi::Value rt = o.Get("ropeType");
  std::string rope = rt.IsUndefined() ? "default" : ReadString(env, rt, what + ".ropeType");
  if (rope == "default") {
    c.rope_type = RopeType::Default;
  } else if (rope == "linear") {
    c.rope_type = RopeType::Linear;
  } else if (rope == "llama3") {
    c.rope_type = RopeType::Llama3;
  } else {
    type_error(env, "config.ropeType must be 'default', 'linear' or 'llama3' (got '" + rope + "')");
  }
  c.rope_factor = number("ropeFactor", c.rope_factor);
  c.rope_low_freq_factor = number("ropeLowFreqFactor", c.rope_low_freq_factor);
  c.rope_high_freq_factor = number("ropeHighFreqFactor", c.rope_high_freq_factor);
  Napi::Value om = o.Get("ropeOriginalMaxPosition");
  if (!om.IsUndefined()) c.rope_original_max_position = ReadInt(env, om, "config.ropeOriginalMaxPosition", 1, kBig);
  c.tie_word_embeddings = boolean("tieWordEmbeddings");
  c.sequence_classification = boolean("sequenceClassification");
  Napi::Value nl = o.Get("numLabels");
  if (!nl.IsUndefined()) c.num_labels = ReadInt(env, nl, "config.numLabels", 1, kBig);
  return c;
}

OptimizerConfig ReadOptimizerConfig(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) type_error(env, "optimizer options must be an object {kind, ...}");
  Napi::Object o = v.As<Napi::Object>();
  OptimizerConfig c;
  try {
    c.kind = parse_optimizer_kind(ReadString(env, Field(env, o, "kind", "optimizer", true), "optimizer.kind"));
  } catch (const std::exception& e) {
    type_error(env, e.what());
  }
  auto number = [&](const char* key, double& dst) {
    Napi::Value f = o.Get(key);
    if (!f.IsUndefined()) dst = ReadNumber(env, f, std::string("optimizer.") + key);
  };
  number("alpha", c.alpha);
  number("beta1", c.beta1);
  number("beta2", c.beta2);
  number("eps", c.eps);
  number("weightDecay", c.weight_decay);
  return c;
}

ModelOptions ReadModelOptions(Napi::Env env, const Napi::CallbackInfo& info) {
  Napi::Object o = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  ModelOptions opts;
  opts.device = o.Get("device").IsUndefined() ? "cpu" : ReadString(env, o.Get("device"), "options.device");
  if (opts.device != "cpu" && opts.device != "cuda")
    throw Napi::TypeError::New(env, "options.device must be 'cpu' or 'cuda' (got '" + opts.device + "')");
  const Napi::Value p = o.Get("precision");
  if (p.IsUndefined()) return opts;
  const std::string name = ReadString(env, p, "options.precision");
  if (name == "fp32") opts.precision = Precision::FP32;
  else if (name == "fp64") opts.precision = Precision::FP64;
  else if (name == "bf16") opts.precision = Precision::BF16;
  else if (name == "fp16") opts.precision = Precision::FP16;
  else throw Napi::TypeError::New(env, "options.precision must be 'fp32', 'fp64', 'bf16' or 'fp16' (got '" + name + "')");
  return opts;
}

}  // namespace sppo::addon
