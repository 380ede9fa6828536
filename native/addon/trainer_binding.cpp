// The Trainer class (trainer_object.h): accumulate, step, gradients and optimizer state.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "addon/async.h"
#include "addon/device_lock.h"
#include "addon/communicator_object.h"
#include "addon/model_args.h"
#include "addon/registry.h"
#include "addon/trainer_object.h"
#include "core/error.h"
#include "io/arena_io.h"
#include "io/tensor_file.h"

namespace sppo::addon {

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

// "<param>.<slot>" names of a trainer's state, in save order, with their (slot, param) indices.
struct StateEntry {
  std::string name;
  int slot, param;
};
std::vector<StateEntry> state_entries(const Trainer& t, const LlamaModel& m) {
  std::vector<StateEntry> out;
  const auto slots = t.slot_names();
  const auto& ps = m.layout().params();
  for (size_t p = 0; p < ps.size(); ++p)
    for (size_t s = 0; s < slots.size(); ++s) out.push_back({ps[p].name + "." + slots[s], int(s), int(p)});
  return out;
}

// The parts of entry `e` (a parameter's slot) this rank keeps: [begin, end) of the parameter's
// elements, and the state tensor holding them. Without ZeRO-1: the whole parameter.
struct StatePart {
  int64_t begin, end;
  Tensor state;
};
std::vector<StatePart> state_parts(const Trainer& t, const LlamaModel& m, const StateEntry& e) {
  const ParamSpec& p = m.layout()[e.param];
  std::vector<StatePart> out;
  for (const OwnedRange& r : t.owned()) {
    const int64_t lo = std::max(r.begin, p.offset), hi = std::min(r.end, p.offset + p.numel);
    if (hi > lo) out.push_back(StatePart{lo - p.offset, hi - p.offset, t.slot(e.slot).slice(r.state_offset + lo - r.begin, hi - lo)});
  }
  return out;
}
}  // namespace

void TrainerObject::Check(Napi::Env env, const char* what) const {
  if (!state_) throw Napi::Error::New(env, std::string("Trainer.") + what + ": the trainer was freed");
  if (state_->broken && std::string(what) != "free" && std::string(what) != "loadState")
    throw Napi::Error::New(env, std::string("Trainer.") + what +
                                    ": a loadState that failed part way left this trainer's optimizer state incomplete; "
                                    "load it again or create a new trainer");
  CheckUsable(env, state_->model, std::string("Trainer.") + what);
}

// new Trainer(model, {optimizer, communicator?, bucketBytes?, zero1?, gradientDtype?: 'fp32' | 'bf16'})
// (gradientDtype 'bf16': the gradient arena in bf16, bf16 models only; the core refuses it otherwise)
TrainerObject::TrainerObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerObject>(info) {
  Napi::Env env = info.Env();
  if (!info.IsConstructCall()) throw Napi::TypeError::New(env, "Trainer must be called with new");
  auto model = ModelObject::StateOf(env, info[0], "argument model");
  CheckUsable(env, model, "new Trainer");
  if (info.Length() < 2 || !info[1].IsObject()) throw Napi::TypeError::New(env, "new Trainer(model, {optimizer, ...})");
  Napi::Object o = info[1].As<Napi::Object>();
  TrainerOptions opts;
  opts.optimizer = ReadOptimizerConfig(env, o.Get("optimizer"));
  if (!o.Get("bucketBytes").IsUndefined())
    opts.bucket_bytes = ReadInt(env, o.Get("bucketBytes"), "options.bucketBytes", 1, int64_t{1} << 40);
  if (!o.Get("zero1").IsUndefined()) opts.zero1 = o.Get("zero1").ToBoolean().Value();
  if (!o.Get("gradientDtype").IsUndefined()) {
    const std::string g = ReadString(env, o.Get("gradientDtype"), "options.gradientDtype");
    if (g == "bf16") opts.grad_dtype = DType::BF16;
    else if (g != "fp32") throw Napi::TypeError::New(env, "options.gradientDtype must be 'fp32' or 'bf16' (got '" + g + "')");
  }
  try {
    std::shared_ptr<Communicator> comm = o.Get("communicator").IsUndefined()
                                             ? make_local_communicator(model->model->backend_ptr())
                                             : CommunicatorObject::Of(env, o.Get("communicator"), "options.communicator");
    auto trainer = std::make_unique<Trainer>(*model->model, std::move(comm), opts);
    auto st = std::make_shared<TrainerState>();
    model->trainers.fetch_add(1);
    st->model = model;
    st->trainer = std::move(trainer);
    state_ = std::move(st);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// accumulate(pairs, last) -> metrics
Napi::Value TrainerObject::Accumulate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Check(env, "accumulate");
  const LlamaConfig& cfg = state_->model->model->config();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "Trainer.accumulate(pairs, last)");
  Napi::Object o = info[0].As<Napi::Object>();
  auto pairs = std::make_shared<HostPairs>();
  pairs->chosen = ReadBatch(env, o.Get("chosen"), "pairs.chosen", true, cfg.vocab_size);
  pairs->rejected = ReadBatch(env, o.Get("rejected"), "pairs.rejected", true, cfg.vocab_size);
  const int64_t B = pairs->chosen.B;
  if (pairs->rejected.B != B) throw Napi::TypeError::New(env, "pairs.rejected.B must equal pairs.chosen.B");
  const auto n = static_cast<size_t>(B);
  pairs->ref_chosen = ReadFloats(env, o.Get("refChosen"), n, "pairs.refChosen");
  pairs->ref_rejected = ReadFloats(env, o.Get("refRejected"), n, "pairs.refRejected");
  pairs->probs = ReadFloats(env, o.Get("chosenProbs"), n, "pairs.chosenProbs");
  pairs->probs_win = ReadFloats(env, o.Get("chosenProbsWin"), n, "pairs.chosenProbsWin");
  pairs->probs_lose = ReadFloats(env, o.Get("chosenProbsLose"), n, "pairs.chosenProbsLose");
  const std::string loss_name = ReadString(env, o.Get("loss"), "pairs.loss");
  const double beta = ReadNumber(env, o.Get("beta"), "pairs.beta");
  const double scale = ReadNumber(env, o.Get("scale"), "pairs.scale");
  const bool last = info.Length() < 2 || info[1].IsUndefined() ? true : info[1].ToBoolean().Value();
  LossType loss;
  try {
    loss = parse_loss_type(loss_name);
  } catch (const std::exception& e) {
    throw Napi::TypeError::New(env, e.what());
  }
  if (!(beta > 0)) throw Napi::TypeError::New(env, "pairs.beta must be > 0");
  auto lease = Acquire(env, state_->model, "Trainer.accumulate");
  auto st = state_;
  return RunAsync<StepMetrics>(
      env,
      [st, lease, pairs, loss, beta, scale, last]() {
        const auto device_lock = device_call_lock(st->model->model->backend());
        st->model->model->set_cancel(lease->cancel_point());
        return st->trainer->accumulate(pairs->view(), loss, beta, scale, last);
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

// step(lr, maxGradNorm) -> {gradNorm, stepped}
Napi::Value TrainerObject::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Check(env, "step");
  const double lr = ReadNumber(env, info[0], "lr");
  const double max_norm = ReadNumber(env, info[1], "maxGradNorm");
  if (lr < 0) throw Napi::TypeError::New(env, "lr must be >= 0");
  auto lease = Acquire(env, state_->model, "Trainer.step");
  auto st = state_;
  return RunAsync<StepResult>(
      env,
      [st, lease, lr, max_norm]() {
        const auto device_lock = device_call_lock(st->model->model->backend());
        st->model->model->set_cancel(lease->cancel_point());
        return st->trainer->step(lr, max_norm);
      },
      [](Napi::Env e, StepResult& r) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        o.Set("gradNorm", r.grad_norm);
        o.Set("stepped", r.stepped);
        return o;
      });
}

Napi::Value TrainerObject::ZeroGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Check(env, "zeroGrad");
  return Guarded(env, [&]() -> Napi::Value {
    state_->trainer->zero_grad();
    return env.Undefined();
  });
}

Napi::Value TrainerObject::Gradient(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Check(env, "gradient");
  const std::string name = ReadString(env, info[0], "name");
  return Guarded(env, [&]() {
    state_->trainer->finish_collectives();  // the reduced values, not a mix with the local ones
    return TensorToJs(env, state_->model->model->backend(), state_->trainer->gradient(name));
  });
}

// stateInfo() -> {kind, stepCount, entries: [{name, numel}]}
Napi::Value TrainerObject::StateInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Check(env, "stateInfo");
  const Trainer& t = *state_->trainer;
  const LlamaModel& m = *state_->model->model;
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", optimizer_kind_name(t.options().optimizer.kind));
  o.Set("stepCount", static_cast<double>(t.step_count()));
  const auto entries = state_entries(t, m);
  Napi::Array arr = Napi::Array::New(env, entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    Napi::Object e = Napi::Object::New(env);
    e.Set("name", entries[i].name);
    e.Set("numel", static_cast<double>(m.layout()[entries[i].param].numel));
    arr.Set(static_cast<uint32_t>(i), e);
  }
  o.Set("entries", arr);
  return o;
}

// saveState(file | null, headerJson, dataBytes): F32 tensors in stateInfo() order. Under ZeRO-1
// every rank calls it (the state is gathered, a collective); the rank given a file writes it.
Napi::Value TrainerObject::SaveState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Check(env, "saveState");
  const bool write = !(info[0].IsNull() || info[0].IsUndefined());
  const std::string file = write ? ReadString(env, info[0], "file") : std::string();
  const std::string header = write ? ReadString(env, info[1], "headerJson") : std::string();
  const auto bytes = write ? static_cast<uint64_t>(ReadInt(env, info[2], "dataBytes", 0, int64_t{1} << 53)) : 0;
  if (!write && !state_->trainer->sharded()) return env.Undefined();  // nothing to take part in
  auto lease = Acquire(env, state_->model, "Trainer.saveState");
  auto st = state_;
  return RunAsync<bool>(
      env,
      [st, lease, write, file, header, bytes]() {
        const auto device_lock = device_call_lock(st->model->model->backend());
        Trainer& t = *st->trainer;
        const LlamaModel& m = *st->model->model;
        const auto entries = state_entries(t, m);
        if (!t.sharded()) {
          std::vector<Tensor> ts;
          for (const auto& e : entries) ts.push_back(state_parts(t, m, e).at(0).state);
          const io::HostFloats host = io::host_floats(m.backend(), ts);
          io::write_safetensors(file, header, host.sources, DType::F32, bytes);
          return true;
        }
        const auto total = static_cast<size_t>(m.layout().total());
        std::vector<std::vector<float>> slots(t.slot_names().size());
        for (size_t i = 0; i < slots.size(); ++i) {
          if (write) slots[i].resize(total);
          t.gather_slot(static_cast<int>(i), write ? slots[i].data() : nullptr);
        }
        if (!write) return true;
        std::vector<io::TensorSource> sources;
        for (const auto& e : entries) {
          const ParamSpec& p = m.layout()[e.param];
          sources.push_back(io::TensorSource{slots[static_cast<size_t>(e.slot)].data() + p.offset, p.numel});
        }
        io::write_safetensors(file, header, sources, DType::F32, bytes);
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
}

// loadState(entries [{name, file, offset, nbytes}] (F32), stepCount). A bf16 model's state has a
// "<param>.master" entry per parameter (the fp32 master weights); the bf16 weights are rewritten
// from it once it is loaded. Under ZeRO-1 every rank calls it (the rewritten weights are gathered).
Napi::Value TrainerObject::LoadState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Check(env, "loadState");
  if (info.Length() < 2 || !info[0].IsArray()) throw Napi::TypeError::New(env, "Trainer.loadState(entries, stepCount)");
  struct Entry {
    std::string file;
    uint64_t offset, nbytes;
  };
  auto by_name = std::make_shared<std::map<std::string, Entry>>();
  Napi::Array arr = info[0].As<Napi::Array>();
  constexpr int64_t kMax = int64_t{1} << 53;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const std::string what = "entries[" + std::to_string(i) + "]";
    if (!arr.Get(i).IsObject()) throw Napi::TypeError::New(env, what + " must be an object");
    Napi::Object o = arr.Get(i).As<Napi::Object>();
    const std::string name = ReadString(env, o.Get("name"), what + ".name");
    (*by_name)[name] = Entry{ReadString(env, o.Get("file"), what + ".file"),
                             static_cast<uint64_t>(ReadInt(env, o.Get("offset"), what + ".offset", 0, kMax)),
                             static_cast<uint64_t>(ReadInt(env, o.Get("nbytes"), what + ".nbytes", 0, kMax))};
  }
  const int64_t step_count = ReadInt(env, info[1], "stepCount", 0, kMax);
  const auto entries = state_entries(*state_->trainer, *state_->model->model);
  // Validate everything before changing anything.
  for (const auto& e : entries) {
    auto it = by_name->find(e.name);
    if (it == by_name->end()) throw Napi::Error::New(env, "optimizer.load_state: missing state '" + e.name + "'");
    const int64_t numel = state_->model->model->layout()[e.param].numel;
    if (it->second.nbytes != static_cast<uint64_t>(numel) * 4)
      throw Napi::Error::New(env, "optimizer.load_state: '" + e.name + "' has " + std::to_string(it->second.nbytes / 4) +
                                      " elements, expected " + std::to_string(numel));
  }
  if (by_name->size() != entries.size())
    throw Napi::Error::New(env, "optimizer.load_state: got " + std::to_string(by_name->size()) +
                                    " state entries, expected " + std::to_string(entries.size()));
  auto lease = Acquire(env, state_->model, "Trainer.loadState");
  auto st = state_;
  return RunAsync<bool>(
      env,
      [st, lease, by_name, entries, step_count]() {
        const auto device_lock = device_call_lock(st->model->model->backend());
        const LlamaModel& m = *st->model->model;
        try {
          for (const auto& e : entries) {
            const Entry& f = by_name->at(e.name);
            for (const StatePart& part : state_parts(*st->trainer, m, e))
              io::load_into(f.file, f.offset + static_cast<uint64_t>(part.begin) * 4,
                            static_cast<uint64_t>(part.end - part.begin) * 4, DType::F32, m.backend(), part.state,
                            e.name);
          }
        } catch (...) {
          // A read that failed part way left the state part old, part loaded: the trainer must
          // not step from it (a bf16 model's next step would write bf16 of a mixed master).
          st->broken = true;
          throw;
        }
        // bf16 models: the weights are the loaded master's rounding (a collective under ZeRO-1,
        // where every rank loads its pieces; src/stages/train.ts loads on every rank).
        st->trainer->weights_from_master();
        st->trainer->set_step_count(step_count);
        st->broken = false;
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
}

// buckets() -> the buckets and the last step's reductions in order:
// {buckets: [{begin, end}], events: [{bucket, seconds, reducedSeconds}]}
Napi::Value TrainerObject::Buckets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Check(env, "buckets");
  const Trainer& t = *state_->trainer;
  Napi::Array bs = Napi::Array::New(env, t.buckets().size());
  for (size_t i = 0; i < t.buckets().size(); ++i) {
    Napi::Object b = Napi::Object::New(env);
    b.Set("begin", static_cast<double>(t.buckets()[i].begin));
    b.Set("end", static_cast<double>(t.buckets()[i].end));
    bs.Set(static_cast<uint32_t>(i), b);
  }
  Napi::Array ev = Napi::Array::New(env, t.last_bucket_events().size());
  for (size_t i = 0; i < t.last_bucket_events().size(); ++i) {
    Napi::Object e = Napi::Object::New(env);
    e.Set("bucket", t.last_bucket_events()[i].bucket);
    e.Set("seconds", t.last_bucket_events()[i].seconds);
    e.Set("reducedSeconds", t.last_bucket_events()[i].reduced_seconds);
    ev.Set(static_cast<uint32_t>(i), e);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("buckets", bs);
  o.Set("events", ev);
  return o;
}

Napi::Value TrainerObject::Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!state_) return env.Undefined();
  if (state_->model->busy.load())
    throw Napi::Error::New(env, "Trainer.free: a call on its model is still running (await it first)");
  state_.reset();
  return env.Undefined();
}

Napi::Value TrainerObject::IsFreed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }

Napi::Function TrainerObject::Define(Napi::Env env) {
  return DefineClass(env, "Trainer",
                     {
                         InstanceMethod<&TrainerObject::Accumulate>("accumulate"),
                         InstanceMethod<&TrainerObject::Step>("step"),
                         InstanceMethod<&TrainerObject::ZeroGrad>("zeroGrad"),
                         InstanceMethod<&TrainerObject::Gradient>("gradient"),
                         InstanceMethod<&TrainerObject::StateInfo>("stateInfo"),
                         InstanceMethod<&TrainerObject::SaveState>("saveState"),
                         InstanceMethod<&TrainerObject::LoadState>("loadState"),
                         InstanceMethod<&TrainerObject::Buckets>("buckets"),
                         InstanceMethod<&TrainerObject::Free>("free"),
                         InstanceAccessor<&TrainerObject::IsFreed>("freed"),
                     });
}

void RegisterTrainer(Napi::Env env, Napi::Object exports) { exports.Set("Trainer", TrainerObject::Define(env)); }

}  // namespace sppo::addon
