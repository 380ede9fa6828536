// The Model class: construction, forward passes, sampling, backward and gradients.
#include <cstring>
#include <limits>

#include "addon/args.h"
#include "addon/async.h"
#include "addon/model_args.h"
#include "addon/model_object.h"
#include "addon/registry.h"
#include "core/error.h"

namespace sppo::addon {

void ModelObject::CheckUsable(Napi::Env env, const char* what) const {
  if (!state_) throw Napi::Error::New(env, std::string("Model.") + what + ": the model was freed");
  if (busy_->load())
    throw Napi::Error::New(env, std::string("Model.") + what +
                                    ": another call on this model is still running (await it first)");
}

std::shared_ptr<Lease> ModelObject::Acquire(Napi::Env env, const char* what) {
  CheckUsable(env, what);
  busy_->store(true);
  return std::make_shared<Lease>(busy_);
}

ModelObject::ModelObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelObject>(info) {
  Napi::Env env = info.Env();
  if (!info.IsConstructCall()) throw Napi::TypeError::New(env, "Model must be called with new");
  LlamaConfig cfg = ReadLlamaConfig(env, info[0]);
  try {
    validate_config(cfg);
    auto st = std::make_shared<ModelState>();
    st->model = std::make_unique<LlamaModel>(cfg);
    state_ = std::move(st);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Value ModelObject::Params(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "params");
  return Guarded(env, [&]() -> Napi::Value {
    auto& ps = state_->model->params();
    Napi::Array out = Napi::Array::New(env, ps.size());
    for (size_t i = 0; i < ps.size(); ++i) {
      Napi::Object p = Napi::Object::New(env);
      p.Set("name", ps[i].name);
      Napi::Array shape = Napi::Array::New(env, ps[i].shape.size());
      for (size_t d = 0; d < ps[i].shape.size(); ++d) shape.Set(d, Napi::Number::New(env, static_cast<double>(ps[i].shape[d])));
      p.Set("shape", shape);
      out.Set(i, p);
    }
    return out;
  });
}

Napi::Value ModelObject::InitRandom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto seed = static_cast<uint64_t>(ReadInt(env, info[0], "seed", 0, (int64_t{1} << 53)));
  const double stddev = info.Length() > 1 && !info[1].IsUndefined() ? ReadNumber(env, info[1], "std") : 0.02;
  auto lease = Acquire(env, "initRandom");
  auto st = state_;
  return RunAsync<bool>(
      env, [st, lease, seed, stddev]() { st->model->init_random(seed, stddev); return true; },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
}

Napi::Value ModelObject::SetGradientCheckpointing(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "setGradientCheckpointing");
  if (info.Length() < 1 || !info[0].IsBoolean()) throw Napi::TypeError::New(env, "argument on must be a boolean");
  return Guarded(env, [&]() -> Napi::Value {
    state_->model->set_gradient_checkpointing(info[0].As<Napi::Boolean>().Value());
    return env.Undefined();
  });
}

static Napi::Float32Array ToF32(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
  return a;
}

Napi::Value ModelObject::Logits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "logits");
  const LlamaConfig& cfg = state_->model->config();
  if (cfg.sequence_classification)
    throw Napi::Error::New(env, "Model.logits: a sequence-classification (reward) model has no language-model head; use scores");
  auto batch = std::make_shared<HostBatch>(ReadBatch(env, info[0], "batch", false, cfg.vocab_size));
  const int64_t V = cfg.vocab_size;
  auto lease = Acquire(env, "logits");
  auto st = state_;
  return RunAsync<std::vector<float>>(
      env,
      [st, lease, batch, V]() {
        std::vector<float> out(static_cast<size_t>(batch->B * batch->T * V));
        st->model->logits(batch->view(), out.data());
        return out;
      },
      [](Napi::Env e, std::vector<float>& out) -> Napi::Value { return ToF32(e, out); });
}

Napi::Value ModelObject::Scores(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "scores");
  const LlamaConfig& cfg = state_->model->config();
  if (!cfg.sequence_classification)
    throw Napi::Error::New(env, "Model.scores: this is a causal language model, not a sequence-classification (reward) model");
  auto batch = std::make_shared<HostBatch>(ReadBatch(env, info[0], "batch", false, cfg.vocab_size));
  const int64_t L = cfg.num_labels;
  auto lease = Acquire(env, "scores");
  auto st = state_;
  return RunAsync<std::vector<float>>(
      env,
      [st, lease, batch, L]() {
        std::vector<float> out(static_cast<size_t>(batch->B * L));
        st->model->scores(batch->view(), out.data());
        return out;
      },
      [](Napi::Env e, std::vector<float>& out) -> Napi::Value { return ToF32(e, out); });
}

Napi::Value ModelObject::SequenceLogprobs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "sequenceLogprobs");
  const LlamaConfig& cfg = state_->model->config();
  if (cfg.sequence_classification)
    throw Napi::Error::New(env, "Model.sequenceLogprobs: a sequence-classification (reward) model has no language-model head");
  auto batch = std::make_shared<HostBatch>(ReadBatch(env, info[0], "batch", true, cfg.vocab_size));
  auto lease = Acquire(env, "sequenceLogprobs");
  auto st = state_;
  return RunAsync<std::vector<float>>(
      env,
      [st, lease, batch]() {
        std::vector<float> out(static_cast<size_t>(batch->B));
        st->model->sequence_logprobs(batch->view(), out.data(), nullptr);
        return out;
      },
      [](Napi::Env e, std::vector<float>& out) -> Napi::Value { return ToF32(e, out); });
}

Napi::Value ModelObject::Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "generate");
  const LlamaConfig& cfg = state_->model->config();
  if (cfg.sequence_classification)
    throw Napi::Error::New(env, "Model.generate: a sequence-classification (reward) model cannot generate");
  if (info.Length() < 3 || !info[0].IsArray() || !info[1].IsArray() || !info[2].IsObject())
    throw Napi::TypeError::New(env, "Model.generate(prompts: Int32Array[], seeds: number[], options)");
  Napi::Array jp = info[0].As<Napi::Array>();
  Napi::Array js = info[1].As<Napi::Array>();
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
  Napi::Object o = info[2].As<Napi::Object>();
  GenerateOptions opts;
  opts.max_new_tokens = ReadInt(env, o.Get("maxNewTokens"), "options.maxNewTokens", 0, int64_t{1} << 24);
  opts.temperature = ReadNumber(env, o.Get("temperature"), "options.temperature");
  opts.top_p = ReadNumber(env, o.Get("topP"), "options.topP");
  if (!o.Get("topK").IsUndefined()) opts.top_k = ReadInt(env, o.Get("topK"), "options.topK", 0, cfg.vocab_size);
  if (!o.Get("greedy").IsUndefined()) opts.greedy = o.Get("greedy").ToBoolean().Value();
  Napi::Value eos = o.Get("eosTokenIds");
  if (!eos.IsArray()) throw Napi::TypeError::New(env, "options.eosTokenIds must be an array of token ids");
  Napi::Array ea = eos.As<Napi::Array>();
  for (uint32_t i = 0; i < ea.Length(); ++i)
    opts.eos_ids.push_back(static_cast<int32_t>(
        ReadInt(env, ea.Get(i), "options.eosTokenIds[" + std::to_string(i) + "]", 0, cfg.vocab_size - 1)));
  if (opts.temperature < 0) throw Napi::TypeError::New(env, "options.temperature must be >= 0");
  if (!(opts.top_p > 0 && opts.top_p <= 1)) throw Napi::TypeError::New(env, "options.topP must be in (0, 1]");
  auto lease = Acquire(env, "generate");
  auto st = state_;
  return RunAsync<std::vector<Generation>>(
      env, [st, lease, prompts, seeds, opts]() { return st->model->generate(*prompts, *seeds, opts); },
      [](Napi::Env e, std::vector<Generation>& gens) -> Napi::Value {
        Napi::Array out = Napi::Array::New(e, gens.size());
        for (size_t i = 0; i < gens.size(); ++i) {
          Napi::Object g = Napi::Object::New(e);
          Napi::Int32Array t = Napi::Int32Array::New(e, gens[i].tokens.size());
          if (!gens[i].tokens.empty()) std::memcpy(t.Data(), gens[i].tokens.data(), gens[i].tokens.size() * 4);
          g.Set("tokens", t);
          g.Set("logprobs", ToF32(e, gens[i].logprobs));
          g.Set("stoppedAtEos", Napi::Boolean::New(e, gens[i].stopped_at_eos));
          out.Set(i, g);
        }
        return out;
      });
}

namespace {
// Owns every array a PairBatch points into.
struct HostPairs {
  HostBatch chosen, rejected;
  std::vector<float> ref_chosen, ref_rejected, probs, probs_win, probs_lose;
  PairBatch view() const {
    PairBatch p;
    p.chosen = chosen.view();
    p.rejected = rejected.view();
    p.ref_chosen = ref_chosen.data();
    p.ref_rejected = ref_rejected.data();
    p.chosen_probs = probs.data();
    p.chosen_probs_win = probs_win.data();
    p.chosen_probs_lose = probs_lose.data();
    return p;
  }
};
}  // namespace

Napi::Value ModelObject::Accumulate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "accumulate");
  const LlamaConfig& cfg = state_->model->config();
  if (cfg.sequence_classification)
    throw Napi::Error::New(env, "Model.accumulate: a sequence-classification (reward) model cannot be trained on the SPPO loss");
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "Model.accumulate(pairs)");
  Napi::Object o = info[0].As<Napi::Object>();
  auto pairs = std::make_shared<HostPairs>();
  pairs->chosen = ReadBatch(env, o.Get("chosen"), "pairs.chosen", true, cfg.vocab_size);
  pairs->rejected = ReadBatch(env, o.Get("rejected"), "pairs.rejected", true, cfg.vocab_size);
  const int64_t B = pairs->chosen.B;
  if (pairs->rejected.B != B)
    throw Napi::TypeError::New(env, "pairs.rejected.B must equal pairs.chosen.B");
  const auto n = static_cast<size_t>(B);
  pairs->ref_chosen = ReadFloats(env, o.Get("refChosen"), n, "pairs.refChosen");
  pairs->ref_rejected = ReadFloats(env, o.Get("refRejected"), n, "pairs.refRejected");
  pairs->probs = ReadFloats(env, o.Get("chosenProbs"), n, "pairs.chosenProbs");
  pairs->probs_win = ReadFloats(env, o.Get("chosenProbsWin"), n, "pairs.chosenProbsWin");
  pairs->probs_lose = ReadFloats(env, o.Get("chosenProbsLose"), n, "pairs.chosenProbsLose");
  const std::string loss_name = ReadString(env, o.Get("loss"), "pairs.loss");
  const double beta = ReadNumber(env, o.Get("beta"), "pairs.beta");
  const double scale = ReadNumber(env, o.Get("scale"), "pairs.scale");
  LossType loss;
  try {
    loss = parse_loss_type(loss_name);
  } catch (const std::exception& e) {
    throw Napi::TypeError::New(env, e.what());
  }
  if (!(beta > 0)) throw Napi::TypeError::New(env, "pairs.beta must be > 0");
  auto lease = Acquire(env, "accumulate");
  auto st = state_;
  return RunAsync<StepMetrics>(
      env,
      [st, lease, pairs, loss, beta, scale]() {
        return st->model->loss_and_backward(pairs->view(), loss, beta, static_cast<float>(scale));
      },
      [](Napi::Env e, StepMetrics& m) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        SetLossSummary(r, m.summary);
        r.Set("policyChosenLogp", m.policy_chosen_logp);
        r.Set("policyRejectedLogp", m.policy_rejected_logp);
        r.Set("tokens", static_cast<double>(m.tokens));
        return r;
      });
}

Napi::Value ModelObject::ZeroGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "zeroGrad");
  return Guarded(env, [&]() -> Napi::Value {
    state_->model->zero_grad();
    return env.Undefined();
  });
}

// Copies one parameter's data or gradient into a new Float32Array.
static Napi::Value CopyParam(Napi::Env env, LlamaModel& model, const Napi::Value& name_v, bool grad) {
  const std::string name = ReadString(env, name_v, "name");
  ParamRef* p = model.find_param(name);
  if (!p) throw Napi::Error::New(env, "no parameter named '" + name + "'");
  const float* src = grad ? p->grad : p->data;
  if (!src) throw Napi::Error::New(env, "parameter '" + name + "' has no " + (grad ? "gradient" : "data"));
  Napi::Float32Array a = Napi::Float32Array::New(env, static_cast<size_t>(p->numel()));
  if (p->numel() > 0) std::memcpy(a.Data(), src, static_cast<size_t>(p->numel()) * sizeof(float));
  return a;
}

Napi::Value ModelObject::Gradient(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "gradient");
  return Guarded(env, [&]() { return CopyParam(env, *state_->model, info[0], true); });
}

Napi::Value ModelObject::ReadParam(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "readParam");
  return Guarded(env, [&]() { return CopyParam(env, *state_->model, info[0], false); });
}

Napi::Value ModelObject::Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!state_) return env.Undefined();  // freeing twice is harmless
  if (busy_->load())
    throw Napi::Error::New(env, "Model.free: a call on this model is still running (await it first)");
  state_.reset();
  return env.Undefined();
}

Napi::Value ModelObject::IsBusy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), busy_->load()); }
Napi::Value ModelObject::IsFreed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }

Napi::Function ModelObject::Define(Napi::Env env) {
  return DefineClass(env, "Model",
                     {
                         InstanceMethod<&ModelObject::Params>("params"),
                         InstanceMethod<&ModelObject::InitRandom>("initRandom"),
                         InstanceMethod<&ModelObject::SetGradientCheckpointing>("setGradientCheckpointing"),
                         InstanceMethod<&ModelObject::Logits>("logits"),
                         InstanceMethod<&ModelObject::Scores>("scores"),
                         InstanceMethod<&ModelObject::SequenceLogprobs>("sequenceLogprobs"),
                         InstanceMethod<&ModelObject::Generate>("generate"),
                         InstanceMethod<&ModelObject::Accumulate>("accumulate"),
                         InstanceMethod<&ModelObject::ZeroGrad>("zeroGrad"),
                         InstanceMethod<&ModelObject::Gradient>("gradient"),
                         InstanceMethod<&ModelObject::ReadParam>("readParam"),
                         InstanceMethod<&ModelObject::Free>("free"),
                         InstanceAccessor<&ModelObject::IsBusy>("busy"),
                         InstanceAccessor<&ModelObject::IsFreed>("freed"),
                         InstanceMethod<&ModelObject::LoadTensors>("loadTensors"),
                         InstanceMethod<&ModelObject::SaveTensors>("saveTensors"),
                         InstanceMethod<&ModelObject::OptimizerStep>("optimizerStep"),
                         InstanceMethod<&ModelObject::OptimizerStateInfo>("optimizerStateInfo"),
                         InstanceMethod<&ModelObject::SaveOptimizerState>("saveOptimizerState"),
                         InstanceMethod<&ModelObject::LoadOptimizerState>("loadOptimizerState"),
                     });
}

void RegisterModel(Napi::Env env, Napi::Object exports) { exports.Set("Model", ModelObject::Define(env)); }

}  // namespace sppo::addon
