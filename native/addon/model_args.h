// Conversions from JS arguments to the core's plain structs for the model and trainer bindings.
// Everything is copied into native vectors on the JS thread, so queued work never touches JS memory.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/llama_model.h"
#include "train/optimizer_config.h"

namespace sppo::addon {

// A [B, T] batch owned by native vectors; view() gives the core's TokenBatch.
struct HostBatch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> tokens;
  std::vector<uint8_t> attention_mask;
  std::vector<uint8_t> response_mask;  // empty unless requested
  TokenBatch view() const;
};

// { tokens: Int32Array, attentionMask: Uint8Array, responseMask?: Uint8Array, B, T }.
// Token ids are checked against vocab_size here too, so a bad id is an error, not a crash.
HostBatch ReadBatch(Napi::Env env, const Napi::Value& v, const std::string& what, bool need_response,
                    int64_t vocab_size);

// The {device?, precision?} options (info[1]) of new Model and new PairRM: device 'cpu' (the
// default) or 'cuda', precision 'fp32' (the default), 'fp64' or 'bf16'.
struct ModelOptions {
  std::string device;
  Precision precision = Precision::FP32;
};
ModelOptions ReadModelOptions(Napi::Env env, const Napi::CallbackInfo& info);

LlamaConfig ReadLlamaConfig(Napi::Env env, const Napi::Value& v);
OptimizerConfig ReadOptimizerConfig(Napi::Env env, const Napi::Value& v);

double ReadNumber(Napi::Env env, const Napi::Value& v, const std::string& what);
int64_t ReadInt(Napi::Env env, const Napi::Value& v, const std::string& what, int64_t lo, int64_t hi);
std::string ReadString(Napi::Env env, const Napi::Value& v, const std::string& what);
// A Float32Array of exactly n elements, copied.
std::vector<float> ReadFloats(Napi::Env env, const Napi::Value& v, size_t n, const std::string& what);

}  // namespace sppo::addon
