// The Model class: construction, forward passes, sampling, parameters, cancel and free.
#include <cstring>
#include <limits>

#include "addon/arena_methods.h"
#include "addon/args.h"
#include "addon/async.h"
#include "addon/async_progress.h"
#include "addon/device_lock.h"
#include "addon/model_args.h"
#include "addon/model_object.h"
#include "addon/registry.h"
#include "backend/backend.h"
#include "core/error.h"
#include "model/generate.h"
#include "model/weight_arena.h"

namespace sppo::addon {

Napi::FunctionReference* ModelObject::constructor_ = nullptr;

void CheckUsable(Napi::Env env, const std::shared_ptr<ModelState>& st, const std::string& what) {
  CheckUsableState(env, st, what);
}

std::shared_ptr<Lease> Acquire(Napi::Env env, const std::shared_ptr<ModelState>& st, const std::string& what) {
  return AcquireState(env, st, what);
}

Napi::Value TensorToJs(Napi::Env env, Backend& be, const Tensor& t) {
  if (t.dtype == DType::F64) {
    Napi::Float64Array a = Napi::Float64Array::New(env, static_cast<size_t>(t.numel));
    if (t.numel) be.download(a.Data(), t.data, t.bytes());
    return a;
  }
  SPPO_CHECK(t.dtype == DType::F32 || t.dtype == DType::BF16, "TensorToJs: F32, BF16 or F64 only (got ",
             dtype_name(t.dtype), ")");
  Napi::Float32Array a = Napi::Float32Array::New(env, static_cast<size_t>(t.numel));
  // A bf16 model's weights come back widened (exact).
  if (t.numel) download_as(be, t, Tensor(a.Data(), DType::F32, t.numel), t.numel);
  return a;
}

namespace {
Napi::Float32Array ToF32(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
  return a;
}

// One generate_each report, queued for the JS thread (shared: the progress queue copies reports).
struct GenerateStepReport {
  int64_t finished = 0;
  std::vector<FinishedPrompt> done;
};
}  // namespace

// new Model(config, {device?, precision?})
ModelObject::ModelObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelObject>(info) {
  Napi::Env env = info.Env();
  if (!info.IsConstructCall()) throw Napi::TypeError::New(env, "Model must be called with new");
  LlamaConfig cfg = ReadLlamaConfig(env, info[0]);
  const ModelOptions opts = ReadModelOptions(env, info);
  device_ = opts.device;
  try {
    auto st = std::make_shared<ModelState>();
    st->model = std::make_shared<LlamaModel>(backend_for(device_ == "cpu" ? sppo::Device::CPU : sppo::Device::CUDA),
                                             cfg, opts.precision);
    state_ = std::move(st);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

std::shared_ptr<ModelState> ModelObject::StateOf(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsObject() || !constructor_ || !v.As<Napi::Object>().InstanceOf(constructor_->Value()))
    throw Napi::TypeError::New(env, std::string(what) + " must be a Model");
  return Unwrap(v.As<Napi::Object>())->state_;
}

Napi::Value ModelObject::Params(const Napi::CallbackInfo& info) { return ParamsMethod(info, state_, "Model.params"); }

Napi::Value ModelObject::InitRandom(const Napi::CallbackInfo& info) {
  if (state_) state_->check_weights_writable(info.Env(), "Model.initRandom");
  return InitRandomMethod(info, state_, "Model.initRandom");
}

Napi::Value ModelObject::SetGradientCheckpointing(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, state_, "Model.setGradientCheckpointing");
  if (info.Length() < 1 || !info[0].IsBoolean()) throw Napi::TypeError::New(env, "argument on must be a boolean");
  state_->model->set_gradient_checkpointing(info[0].As<Napi::Boolean>().Value());
  return env.Undefined();
}

Napi::Value ModelObject::Logits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, state_, "Model.logits");
  const LlamaConfig& cfg = state_->model->config();
  if (cfg.sequence_classification)
    throw Napi::Error::New(env, "Model.logits: a sequence-classification (reward) model has no language-model head; use scores");
  auto batch = std::make_shared<HostBatch>(ReadBatch(env, info[0], "batch", false, cfg.vocab_size));
  const int64_t V = cfg.vocab_size;
  auto lease = Acquire(env, state_, "Model.logits");
  auto st = state_;
  return RunAsync<std::vector<float>>(
      env,
      [st, lease, batch, V]() {
        const auto device_lock = device_call_lock(st->model->backend());
        std::vector<float> out(static_cast<size_t>(batch->B * batch->T * V));
        st->model->set_cancel(lease->cancel_point());
        st->model->logits(batch->view(), Tensor(out.data(), DType::F32, static_cast<int64_t>(out.size())));
        return out;
      },
      [](Napi::Env e, std::vector<float>& out) -> Napi::Value { return ToF32(e, out); });
}

Napi::Value ModelObject::Scores(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, state_, "Model.scores");
  const LlamaConfig& cfg = state_->model->config();
  if (!cfg.sequence_classification)
    throw Napi::Error::New(env, "Model.scores: this is a causal language model, not a sequence-classification (reward) model");
  auto batch = std::make_shared<HostBatch>(ReadBatch(env, info[0], "batch", false, cfg.vocab_size));
  const int64_t L = cfg.num_labels;
  auto lease = Acquire(env, state_, "Model.scores");
  auto st = state_;
  return RunAsync<std::vector<float>>(
      env,
      [st, lease, batch, L]() {
        const auto device_lock = device_call_lock(st->model->backend());
        std::vector<float> out(static_cast<size_t>(batch->B * L));
        st->model->set_cancel(lease->cancel_point());
        st->model->scores(batch->view(), Tensor(out.data(), DType::F32, static_cast<int64_t>(out.size())));
        return out;
      },
      [](Napi::Env e, std::vector<float>& out) -> Napi::Value { return ToF32(e, out); });
}

Napi::Value ModelObject::SequenceLogprobs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, state_, "Model.sequenceLogprobs");
  const LlamaConfig& cfg = state_->model->config();
  if (cfg.sequence_classification)
    throw Napi::Error::New(env, "Model.sequenceLogprobs: a sequence-classification (reward) model has no language-model head");
  auto batch = std::make_shared<HostBatch>(ReadBatch(env, info[0], "batch", true, cfg.vocab_size));
  auto lease = Acquire(env, state_, "Model.sequenceLogprobs");
  auto st = state_;
  return RunAsync<std::vector<float>>(
      env,
      [st, lease, batch]() {
        const auto device_lock = device_call_lock(st->model->backend());
        std::vector<float> out(static_cast<size_t>(batch->B));
        st->model->set_cancel(lease->cancel_point());
        st->model->sequence_logprobs(batch->view(), Tensor(out.data(), DType::F32, batch->B));
        return out;
      },
      [](Napi::Env e, std::vector<float>& out) -> Napi::Value { return ToF32(e, out); });
}

namespace {
// What the scheduler did in a call (model/generate.h GenerateStats), for the rollout's log.
Napi::Object StatsToJs(Napi::Env env, const GenerateStats& s) {
  Napi::Object o = Napi::Object::New(env);
  auto set = [&](const char* k, int64_t v) { o.Set(k, Napi::Number::New(env, static_cast<double>(v))); };
  set("steps", s.steps);
  set("mixedSteps", s.mixed_steps);
  set("prefillTokens", s.prefill_tokens);
  set("decodeTokens", s.decode_tokens);
  set("bucketedSteps", s.bucketed_steps);
  set("peakRunning", s.peak_running);
  set("maxRunningSequences", s.max_running_sequences);
  set("maxBatchTokens", s.max_batch_tokens);
  set("kvBlocks", s.kv_blocks);
  set("blockSize", s.block_size);
  set("peakBlocksInUse", s.peak_blocks_in_use);
  set("swapBlocks", s.swap_blocks);
  set("preemptions", s.preemptions);
  set("swappedOutBlocks", s.swapped_out_blocks);
  set("peakSwappedBlocks", s.peak_swapped_blocks);
  return o;
}
}  // namespace

// generate(prompts: Int32Array[], samplesPerPrompt, seeds: number[] (one per prompt), options,
//          onReport: (finished, done) => void) -> Promise<void>: at the step boundaries at which
// samples finished (model/generate.h generate_each), onReport gets the number of generations
// finished so far and the prompts whose samples all finished in that step, as
// [{prompt, generations: [{tokens, logprobs, stoppedAtEos}] (K of them)}]; each prompt comes once,
// every report before the promise settles. The addon keeps none of them.
Napi::Value ModelObject::Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, state_, "Model.generate");
  const LlamaConfig& cfg = state_->model->config();
  if (cfg.sequence_classification)
    throw Napi::Error::New(env, "Model.generate: a sequence-classification (reward) model cannot generate");
  if (info.Length() < 4 || !info[0].IsArray() || !info[2].IsArray() || !info[3].IsObject())
    throw Napi::TypeError::New(env, "Model.generate(prompts: Int32Array[], samplesPerPrompt: number, seeds: number[], options)");
  Napi::Array jp = info[0].As<Napi::Array>();
  const int64_t samples = ReadInt(env, info[1], "samplesPerPrompt", 1, int64_t{1} << 20);
  Napi::Array js = info[2].As<Napi::Array>();
  if (jp.Length() != js.Length())
    throw Napi::TypeError::New(env, "generate: " + std::to_string(js.Length()) + " seeds for " +
                                        std::to_string(jp.Length()) + " prompts");
  auto prompts = std::make_shared<std::vector<std::vector<int32_t>>>(jp.Length());
  auto seeds = std::make_shared<std::vector<uint64_t>>(js.Length());
  for (uint32_t i = 0; i < jp.Length(); ++i) {
    Napi::Value p = jp.Get(i);
    const std::string what = "prompts[" + std::to_string(i) + "]";
    if (!p.IsTypedArray() || p.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(env, what + " must be an Int32Array");
    auto arr = p.As<Napi::Int32Array>();
    if (arr.ElementLength() == 0) throw Napi::TypeError::New(env, what + " is empty");
    (*prompts)[i].assign(arr.Data(), arr.Data() + arr.ElementLength());
    for (int32_t t : (*prompts)[i])
      if (t < 0 || t >= cfg.vocab_size)
        throw Napi::TypeError::New(env, what + " holds token " + std::to_string(t) + " outside the vocabulary");
    (*seeds)[i] = static_cast<uint64_t>(ReadInt(env, js.Get(i), "seeds[" + std::to_string(i) + "]", 0, int64_t{1} << 53));
  }
  Napi::Object o = info[3].As<Napi::Object>();
  GenerateOptions opts;
  opts.max_new_tokens = ReadInt(env, o.Get("maxNewTokens"), "options.maxNewTokens", 0, int64_t{1} << 24);
  opts.temperature = ReadNumber(env, o.Get("temperature"), "options.temperature");
  opts.top_p = ReadNumber(env, o.Get("topP"), "options.topP");
  if (!o.Get("topK").IsUndefined()) opts.top_k = ReadInt(env, o.Get("topK"), "options.topK", 0, cfg.vocab_size);
  if (!o.Get("greedy").IsUndefined()) opts.greedy = o.Get("greedy").ToBoolean().Value();
  // Continuous-batching budgets (model/scheduler.h), 0 or absent = automatic.
  const int64_t big = int64_t{1} << 40;
  if (!o.Get("maxBatchTokens").IsUndefined())
    opts.max_batch_tokens = ReadInt(env, o.Get("maxBatchTokens"), "options.maxBatchTokens", 0, big);
  if (!o.Get("maxRunningSequences").IsUndefined())
    opts.max_running_sequences = ReadInt(env, o.Get("maxRunningSequences"), "options.maxRunningSequences", 0, big);
  if (!o.Get("maxCacheTokens").IsUndefined())
    opts.max_cache_tokens = ReadInt(env, o.Get("maxCacheTokens"), "options.maxCacheTokens", 0, big);
  if (!o.Get("maxSwapTokens").IsUndefined())  // -1 automatic (as absent), 0 none
    opts.max_swap_tokens = ReadInt(env, o.Get("maxSwapTokens"), "options.maxSwapTokens", -1, big);
  Napi::Value eos = o.Get("eosTokenIds");
  if (!eos.IsArray()) throw Napi::TypeError::New(env, "options.eosTokenIds must be an array of token ids");
  Napi::Array ea = eos.As<Napi::Array>();
  for (uint32_t i = 0; i < ea.Length(); ++i)
    opts.eos_ids.push_back(static_cast<int32_t>(
        ReadInt(env, ea.Get(i), "options.eosTokenIds[" + std::to_string(i) + "]", 0, cfg.vocab_size - 1)));
  if (opts.temperature < 0) throw Napi::TypeError::New(env, "options.temperature must be >= 0");
  if (!(opts.top_p > 0 && opts.top_p <= 1)) throw Napi::TypeError::New(env, "options.topP must be in (0, 1]");
  if (info.Length() < 5 || !info[4].IsFunction())
    throw Napi::TypeError::New(env, "argument onReport must be a function (finished, done) => void");
  Napi::Function on_report = info[4].As<Napi::Function>();
  auto lease = Acquire(env, state_, "Model.generate");
  auto st = state_;
  using Report = std::shared_ptr<GenerateStepReport>;
  auto deliver = [](Napi::Env e, Napi::FunctionReference& fn, const Report& r) {
    Napi::Array done = Napi::Array::New(e, r->done.size());
    for (size_t i = 0; i < r->done.size(); ++i) {
      const FinishedPrompt& f = r->done[i];
      Napi::Array gens = Napi::Array::New(e, f.samples.size());
      for (size_t k = 0; k < f.samples.size(); ++k) {
        const Generation& g = f.samples[k];
        Napi::Object o = Napi::Object::New(e);
        Napi::Int32Array t = Napi::Int32Array::New(e, g.tokens.size());
        if (!g.tokens.empty()) std::memcpy(t.Data(), g.tokens.data(), g.tokens.size() * 4);
        o.Set("tokens", t);
        o.Set("logprobs", ToF32(e, g.logprobs));
        o.Set("stoppedAtEos", Napi::Boolean::New(e, g.stopped_at_eos));
        gens.Set(k, o);
      }
      Napi::Object p = Napi::Object::New(e);
      p.Set("prompt", Napi::Number::New(e, static_cast<double>(f.prompt)));
      p.Set("generations", gens);
      done.Set(i, p);
    }
    fn.Call({Napi::Number::New(e, static_cast<double>(r->finished)), done});
  };
  return RunAsyncWithProgress<GenerateStats, Report>(
      env,
      [st, lease, prompts, samples, seeds, opts](const std::function<void(const Report&)>& send) {
        const auto device_lock = device_call_lock(st->model->backend());
        st->model->set_cancel(lease->cancel_point());
        GenerateStats stats;
        generate_each(*st->model, *prompts, samples, *seeds, opts,
                      [&send](int64_t finished, std::vector<FinishedPrompt>& done) {
                        auto r = std::make_shared<GenerateStepReport>();
                        r->finished = finished;
                        r->done = std::move(done);
                        send(r);
                      },
                      &stats);
        return stats;
      },
      [](Napi::Env e, GenerateStats& s) -> Napi::Value { return StatsToJs(e, s); }, deliver, on_report,
      [st]() { st->cancel.cancel(); });
}

Napi::Value ModelObject::ReadParam(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, state_, "Model.readParam");
  const std::string name = ReadString(env, info[0], "name");
  return Guarded(env, [&]() { return TensorToJs(env, state_->model->backend(), state_->model->param(name)); });
}

// memoryPlan(rows, training) -> {weights, activations, head, total} bytes
Napi::Value ModelObject::MemoryPlan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, state_, "Model.memoryPlan");
  const int64_t rows = ReadInt(env, info[0], "rows", 1, int64_t{1} << 31);
  if (info.Length() < 2 || !info[1].IsBoolean()) throw Napi::TypeError::New(env, "argument training must be a boolean");
  const sppo::MemoryPlan p = state_->model->memory_plan(rows, info[1].As<Napi::Boolean>().Value());
  Napi::Object o = Napi::Object::New(env);
  o.Set("weights", static_cast<double>(p.weights));
  o.Set("activations", static_cast<double>(p.activations));
  o.Set("head", static_cast<double>(p.head));
  o.Set("total", static_cast<double>(p.total()));
  return o;
}

Napi::Value ModelObject::Cancel(const Napi::CallbackInfo& info) {
  if (state_) state_->cancel.cancel();
  return info.Env().Undefined();
}

Napi::Value ModelObject::Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!state_) return env.Undefined();  // freeing twice is harmless
  if (state_->busy.load())
    throw Napi::Error::New(env, "Model.free: a call on this model is still running (await it first)");
  if (state_->trainers.load() > 0)
    throw Napi::Error::New(env, "Model.free: free the trainers of this model first (they hold its gradients)");
  state_.reset();
  return env.Undefined();
}

Napi::Value ModelObject::IsBusy(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), state_ && state_->busy.load());
}
Napi::Value ModelObject::IsFreed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }
Napi::Value ModelObject::Device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), device_); }

Napi::Function ModelObject::Define(Napi::Env env) {
  Napi::Function f = DefineClass(env, "Model",
                                 {
                                     InstanceMethod<&ModelObject::Params>("params"),
                                     InstanceMethod<&ModelObject::InitRandom>("initRandom"),
                                     InstanceMethod<&ModelObject::SetGradientCheckpointing>("setGradientCheckpointing"),
                                     InstanceMethod<&ModelObject::Logits>("logits"),
                                     InstanceMethod<&ModelObject::Scores>("scores"),
                                     InstanceMethod<&ModelObject::SequenceLogprobs>("sequenceLogprobs"),
                                     InstanceMethod<&ModelObject::Generate>("generate"),
                                     InstanceMethod<&ModelObject::ReadParam>("readParam"),
                                     InstanceMethod<&ModelObject::MemoryPlan>("memoryPlan"),
                                     InstanceMethod<&ModelObject::Cancel>("cancel"),
                                     InstanceMethod<&ModelObject::Free>("free"),
                                     InstanceAccessor<&ModelObject::IsBusy>("busy"),
                                     InstanceAccessor<&ModelObject::IsFreed>("freed"),
                                     InstanceAccessor<&ModelObject::Device>("device"),
                                     InstanceMethod<&ModelObject::LoadTensors>("loadTensors"),
                                     InstanceMethod<&ModelObject::SaveTensors>("saveTensors"),
                                 });
  constructor_ = new Napi::FunctionReference(Napi::Persistent(f));  // lives as long as the process
  return f;
}

void RegisterModel(Napi::Env env, Napi::Object exports) { exports.Set("Model", ModelObject::Define(env)); }

}  // namespace sppo::addon
