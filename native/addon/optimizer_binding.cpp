// Model.optimizerStep and optimizer state for checkpoints: the optimizer lives with the model
// (created on the first step or state load) so its buffers follow the parameters.
#include <cmath>

#include "addon/async.h"
#include "addon/model_args.h"
#include "addon/model_object.h"
#include "core/error.h"
#include "io/tensor_file.h"

namespace sppo::addon {

namespace {
// Creates the optimizer on first use; a later call must ask for the same kind.
void EnsureOptimizer(ModelState& st, const OptimizerConfig& cfg) {
  if (st.optimizer) {
    SPPO_CHECK(st.optimizer_config.kind == cfg.kind, "optimizer: this model already has a '",
               st.optimizer_config.kind, "' optimizer; cannot switch to '", cfg.kind, "'");
    return;
  }
  st.optimizer = make_optimizer(cfg, st.model->params());
  st.optimizer_config = cfg;
}

struct StateInfo {
  std::string kind;
  int64_t step_count = 0;
  std::vector<std::pair<std::string, int64_t>> entries;
};
}  // namespace

// optimizerStep(lr, maxGradNorm, options) -> {gradNorm, stepped}: clip, step, zero gradients.
// A non-finite gradient norm skips the step (the caller sees gradNorm and stepped = false).
Napi::Value ModelObject::OptimizerStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "optimizerStep");
  const double lr = ReadNumber(env, info[0], "lr");
  const double max_norm = ReadNumber(env, info[1], "maxGradNorm");
  const OptimizerConfig cfg = ReadOptimizerConfig(env, info[2]);
  if (lr < 0) throw Napi::TypeError::New(env, "lr must be >= 0");
  auto lease = Acquire(env, "optimizerStep");
  auto st = state_;
  return RunAsync<std::pair<double, bool>>(
      env,
      [st, lease, lr, max_norm, cfg]() {
        EnsureOptimizer(*st, cfg);
        auto& params = st->model->params();
        const double norm = clip_grad_norm(params, max_norm);
        const bool ok = std::isfinite(norm);
        if (ok) st->optimizer->step(params, lr);
        st->model->zero_grad();
        return std::make_pair(norm, ok);
      },
      [](Napi::Env e, std::pair<double, bool>& r) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        o.Set("gradNorm", r.first);
        o.Set("stepped", r.second);
        return o;
      });
}

// optimizerStateInfo() -> {kind, stepCount, entries: [{name, numel}]} or null before any step.
Napi::Value ModelObject::OptimizerStateInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto lease = Acquire(env, "optimizerStateInfo");
  auto st = state_;
  return RunAsync<std::unique_ptr<StateInfo>>(
      env,
      [st, lease]() {
        std::unique_ptr<StateInfo> r;
        if (!st->optimizer) return r;
        r = std::make_unique<StateInfo>();
        r->kind = st->optimizer_config.kind;
        r->step_count = st->optimizer->step_count();
        for (auto& s : st->optimizer->state()) r->entries.emplace_back(s.name, static_cast<int64_t>(s.data.size()));
        return r;
      },
      [](Napi::Env e, std::unique_ptr<StateInfo>& r) -> Napi::Value {
        if (!r) return e.Null();
        Napi::Object o = Napi::Object::New(e);
        o.Set("kind", r->kind);
        o.Set("stepCount", static_cast<double>(r->step_count));
        Napi::Array a = Napi::Array::New(e, r->entries.size());
        for (size_t i = 0; i < r->entries.size(); ++i) {
          Napi::Object x = Napi::Object::New(e);
          x.Set("name", r->entries[i].first);
          x.Set("numel", static_cast<double>(r->entries[i].second));
          a.Set(i, x);
        }
        o.Set("entries", a);
        return o;
      });
}

// saveOptimizerState(file, headerJson, dataBytes): F32 buffers in optimizerStateInfo() order.
Napi::Value ModelObject::SaveOptimizerState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string file = ReadString(env, info[0], "file");
  const std::string header = ReadString(env, info[1], "headerJson");
  const auto bytes = static_cast<uint64_t>(ReadInt(env, info[2], "dataBytes", 0, int64_t{1} << 53));
  auto lease = Acquire(env, "saveOptimizerState");
  if (!state_->optimizer) {
    throw Napi::Error::New(env, "saveOptimizerState: the model has no optimizer state yet (no step was taken)");
  }
  auto st = state_;
  return RunAsync<bool>(
      env,
      [st, lease, file, header, bytes]() {
        const auto state = st->optimizer->state();
        std::vector<io::TensorSource> src;
        for (const auto& s : state) src.push_back({s.data.data(), static_cast<int64_t>(s.data.size())});
        io::write_safetensors(file, header, src, DType::F32, bytes);
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
}

// loadOptimizerState(entries [{name, file, offset, nbytes}] (F32), stepCount, options).
Napi::Value ModelObject::LoadOptimizerState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "loadOptimizerState");
  if (info.Length() < 3 || !info[0].IsArray())
    throw Napi::TypeError::New(env, "Model.loadOptimizerState(entries, stepCount, options)");
  struct Entry {
    std::string name, file;
    uint64_t offset, nbytes;
  };
  auto entries = std::make_shared<std::vector<Entry>>();
  Napi::Array arr = info[0].As<Napi::Array>();
  constexpr int64_t kMax = int64_t{1} << 53;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const std::string what = "entries[" + std::to_string(i) + "]";
    if (!arr.Get(i).IsObject()) throw Napi::TypeError::New(env, what + " must be an object");
    Napi::Object o = arr.Get(i).As<Napi::Object>();
    Entry e{ReadString(env, o.Get("name"), what + ".name"), ReadString(env, o.Get("file"), what + ".file"),
            static_cast<uint64_t>(ReadInt(env, o.Get("offset"), what + ".offset", 0, kMax)),
            static_cast<uint64_t>(ReadInt(env, o.Get("nbytes"), what + ".nbytes", 0, kMax))};
    if (e.nbytes % 4 != 0) throw Napi::TypeError::New(env, what + ".nbytes must be a multiple of 4 (F32)");
    entries->push_back(std::move(e));
  }
  const int64_t step_count = ReadInt(env, info[1], "stepCount", 0, kMax);
  const OptimizerConfig cfg = ReadOptimizerConfig(env, info[2]);
  auto lease = Acquire(env, "loadOptimizerState");
  auto st = state_;
  return RunAsync<bool>(
      env,
      [st, lease, entries, step_count, cfg]() {
        std::vector<OptimizerState> state;
        for (const auto& e : *entries) {
          OptimizerState s;
          s.name = e.name;
          s.data.resize(static_cast<size_t>(e.nbytes / 4));
          io::read_tensor(e.file, e.offset, e.nbytes, DType::F32, s.data.data(), static_cast<int64_t>(s.data.size()),
                          e.name);
          state.push_back(std::move(s));
        }
        EnsureOptimizer(*st, cfg);
        st->optimizer->load_state(state, step_count);
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
}

}  // namespace sppo::addon
