// planMemory(request) -> {stage, items: [{name, bytes, detail}], total, kv?: {blocks, blockSize}}
// (kv: generation plans' KV pool): the static memory planner
// (train/memory_plan.h), with no model; availableMemory(device) -> bytes a new allocation can get.
// request.kind: 'training' {config, precision, pairs, seqLen, checkpointing, optimizer, world?,
// zero1?, bucketBytes?, gradientDtype?: 'fp32' | 'bf16'}; 'inference' {config, precision, rows,
// seqLen, head: 'logprobs' | 'scores' | 'logits'}; 'generation' {config, precision, prompts, samples,
// promptLen, maxNewTokens, greedy?, decodeBuckets? (true for a CUDA run: its decode-only steps are
// bucketed, model/decode_buckets.h)};
// 'pairrm' {config (PairRM's), precision, tokens, sequences}.
#include "addon/args.h"
#include "addon/model_args.h"
#include "addon/pairrm_object.h"
#include "addon/registry.h"
#include "backend/backend.h"
#include "train/memory_plan.h"

namespace sppo::addon {

namespace {

[[noreturn]] void type_error(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

constexpr int64_t kBig = int64_t{1} << 40;

int64_t Int(Napi::Env env, const Napi::Object& o, const char* key, int64_t lo) {
  return ReadInt(env, o.Get(key), std::string("request.") + key, lo, kBig);
}

// An optional integer >= 0 (undefined: 0, "automatic").
int64_t Budget(Napi::Env env, const Napi::Object& o, const char* key) {
  return o.Get(key).IsUndefined() ? 0 : Int(env, o, key, 0);
}

bool Bool(Napi::Env env, const Napi::Object& o, const char* key, bool fallback) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) type_error(env, std::string("request.") + key + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

Precision ReadPlanPrecision(Napi::Env env, const Napi::Value& v) {
  const std::string p = ReadString(env, v, "request.precision");
  if (p == "fp32") return Precision::FP32;
  if (p == "fp64") return Precision::FP64;
  if (p == "bf16") return Precision::BF16;
  if (p == "fp16") return Precision::FP16;
  type_error(env, "request.precision must be 'fp32', 'fp64', 'bf16' or 'fp16' (got '" + p + "')");
}

Napi::Value PlanToJs(Napi::Env env, const StagePlan& p) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("stage", p.stage);
  Napi::Array items = Napi::Array::New(env, p.items.size());
  for (size_t i = 0; i < p.items.size(); ++i) {
    Napi::Object it = Napi::Object::New(env);
    it.Set("name", p.items[i].name);
    it.Set("bytes", static_cast<double>(p.items[i].bytes));
    it.Set("detail", p.items[i].detail);
    items.Set(static_cast<uint32_t>(i), it);
  }
  o.Set("items", items);
  o.Set("total", static_cast<double>(p.total()));
  if (p.kv.blocks > 0) {
    Napi::Object kv = Napi::Object::New(env);
    kv.Set("blocks", static_cast<double>(p.kv.blocks));
    kv.Set("blockSize", static_cast<double>(p.kv.block_size));
    o.Set("kv", kv);
  }
  return o;
}

Napi::Value PlanMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) type_error(env, "planMemory: request must be an object");
  const Napi::Object o = info[0].As<Napi::Object>();
  const std::string kind = ReadString(env, o.Get("kind"), "request.kind");
  const Precision precision = ReadPlanPrecision(env, o.Get("precision"));
  if (kind == "pairrm") {
    const PairRmConfig c = ReadPairRmConfig(env, o.Get("config"));
    const int64_t tokens = Int(env, o, "tokens", 1), seqs = Int(env, o, "sequences", 1);
    return Guarded(env, [&]() { return PlanToJs(env, plan_pairrm_memory(c, precision, tokens, seqs)); });
  }
  const LlamaConfig c = ReadLlamaConfig(env, o.Get("config"));
  if (kind == "training") {
    TrainingPlanOptions t;
    t.pairs = Int(env, o, "pairs", 1);
    t.seq_len = Int(env, o, "seqLen", 1);
    t.checkpointing = Bool(env, o, "checkpointing", false);
    const std::string opt = ReadString(env, o.Get("optimizer"), "request.optimizer");
    t.world = static_cast<int>(o.Get("world").IsUndefined() ? 1 : ReadInt(env, o.Get("world"), "request.world", 1, 1 << 20));
    t.zero1 = Bool(env, o, "zero1", false);
    if (!o.Get("bucketBytes").IsUndefined()) t.bucket_bytes = Int(env, o, "bucketBytes", 1);
    if (!o.Get("gradientDtype").IsUndefined()) {
      const std::string g = ReadString(env, o.Get("gradientDtype"), "request.gradientDtype");
      if (g == "bf16") t.grad_dtype = DType::BF16;
      else if (g != "fp32") type_error(env, "request.gradientDtype must be 'fp32' or 'bf16' (got '" + g + "')");
    }
    return Guarded(env, [&]() {
      t.optimizer = parse_optimizer_kind(opt);
      return PlanToJs(env, plan_training_memory(c, precision, t));
    });
  }
  if (kind == "inference") {
    const int64_t rows = Int(env, o, "rows", 1), T = Int(env, o, "seqLen", 1);
    const std::string head = ReadString(env, o.Get("head"), "request.head");
    InferenceHead h;
    if (head == "logprobs") h = InferenceHead::LogProbs;
    else if (head == "scores") h = InferenceHead::Scores;
    else if (head == "logits") h = InferenceHead::Logits;
    else type_error(env, "request.head must be 'logprobs', 'scores' or 'logits' (got '" + head + "')");
    return Guarded(env, [&]() { return PlanToJs(env, plan_inference_memory(c, precision, rows, T, h)); });
  }
  if (kind == "generation") {
    GenerationPlanOptions g;
    g.prompts = Int(env, o, "prompts", 1);
    g.samples = Int(env, o, "samples", 1);
    g.prompt_len = Int(env, o, "promptLen", 1);
    g.max_new_tokens = Int(env, o, "maxNewTokens", 1);
    g.greedy = Bool(env, o, "greedy", false);
    g.max_batch_tokens = Budget(env, o, "maxBatchTokens");
    g.max_running_sequences = Budget(env, o, "maxRunningSequences");
    g.max_cache_tokens = Budget(env, o, "maxCacheTokens");
    g.max_swap_tokens = o.Get("maxSwapTokens").IsUndefined() ? -1 : Int(env, o, "maxSwapTokens", -1);
    g.decode_buckets = Bool(env, o, "decodeBuckets", false);
    return Guarded(env, [&]() { return PlanToJs(env, plan_generation_memory(c, precision, g)); });
  }
  type_error(env, "request.kind must be 'training', 'inference', 'generation' or 'pairrm' (got '" + kind + "')");
}

Napi::Value AvailableMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string d = ReadString(env, info[0], "device");
  if (d != "cpu" && d != "cuda") type_error(env, "device must be 'cpu' or 'cuda' (got '" + d + "')");
  return Guarded(env, [&]() {
    return Napi::Number::New(env, static_cast<double>(backend_for(d == "cpu" ? Device::CPU : Device::CUDA)->available_memory()));
  });
}

}  // namespace

void RegisterMemoryPlan(Napi::Env env, Napi::Object exports) {
  exports.Set("planMemory", Napi::Function::New(env, PlanMemory, "planMemory"));
  exports.Set("availableMemory", Napi::Function::New(env, AvailableMemory, "availableMemory"));
}

}  // namespace sppo::addon
