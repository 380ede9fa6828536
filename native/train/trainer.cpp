// Trainer (train/trainer.h).
#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/parallel.h"

namespace sppo {

namespace {
// The master's conversions: once per trainer and per state load, never inside a step (the step
// writes the bf16 weights in its optimizer kernel); in place on the host's memory, else through it
// in chunks, converted over the threads.
constexpr int64_t kConvertChunk = int64_t{1} << 20;

// Element conversion over [0, n), in blocks over the threads.
template <typename Src, typename Dst, typename Fn>
void convert(const Src* src, Dst* dst, int64_t n, Fn&& fn) {
  constexpr int64_t kBlock = int64_t{1} << 15;
  parallel_for((n + kBlock - 1) / kBlock, [&](int64_t b) {
    for (int64_t i = b * kBlock; i < std::min(n, (b + 1) * kBlock); ++i) dst[i] = fn(src[i]);
  });
}

// dst[0, n) = fn(src[0, n)) for tensors of the backend: in place where the host can read them,
// else through host memory in chunks.
template <typename Src, typename Dst, typename Fn>
void convert_on(Backend& be, const Tensor& src, const Tensor& dst, Fn&& fn) {
  const int64_t n = src.numel;
  if (be.host_accessible()) {
    convert(src.as<Src>(), dst.as<Dst>(), n, fn);
    return;
  }
  std::vector<Src> h;
  std::vector<Dst> f;
  for (int64_t a = 0; a < n; a += kConvertChunk) {
    const int64_t m = std::min(kConvertChunk, n - a);
    h.resize(static_cast<size_t>(m));
    f.resize(static_cast<size_t>(m));
    be.download(h.data(), src.slice(a, m).data, static_cast<size_t>(m) * sizeof(Src));
    convert(h.data(), f.data(), m, fn);
    be.upload(dst.slice(a, m).data, f.data(), static_cast<size_t>(m) * sizeof(Dst));
  }
}

// master[0, n) = widen(w16[0, n)) (exact).
void widen_into(Backend& be, const Tensor& w16, const Tensor& master) {
  convert_on<uint16_t, float>(be, w16, master, [](uint16_t x) { return bf16_to_f32(x); });
}

// w16[0, n) = bf16(master[0, n)), rounded to nearest even as the optimizer kernels round.
void round_into(Backend& be, const Tensor& master, const Tensor& w16) {
  convert_on<float, uint16_t>(be, master, w16, [](float x) { return f32_to_bf16(x); });
}

StateLayout planned(const LlamaModel& model, DType grad_dt, const Communicator& comm, const TrainerOptions& o) {
  return plan_state_layout(model.layout(), dtype_size(grad_dt), o.bucket_bytes, comm.world_size(), comm.rank(),
                           o.zero1);
}
const Communicator& checked(const std::shared_ptr<Communicator>& c) {
  SPPO_CHECK(c != nullptr, "trainer: no communicator");
  return *c;
}
}  // namespace

Trainer::Trainer(LlamaModel& model, std::shared_ptr<Communicator> comm, const TrainerOptions& options)
    : model_(model),
      comm_(std::move(comm)),
      opts_(options),
      tracker_({}),
      loss_ws_(model.backend_ptr(), "the loss"),
      gather_ws_(model.backend_ptr(), "the weight gather") {
  validate_optimizer_config(opts_.optimizer);
  const Dtypes dt = model.dtypes();
  master_ = dt.weight != dt.grad;
  SPPO_CHECK(!master_ || (dt.weight == DType::BF16 && dt.grad == DType::F32), "trainer: a ",
             precision_name(model.precision()), " model's ", dtype_name(dt.weight), " weights with ",
             dtype_name(dt.grad), " gradients have no master-weight mode (bf16 weights with fp32 gradients do)");
  grad_dt_ = resolve_grad_dtype(model.precision(), opts_.grad_dtype);
  StateLayout s = planned(model, grad_dt_, checked(comm_), opts_);
  tracker_ = BucketTracker(std::move(s.buckets));
  sharded_ = s.sharded;
  norm_ranges_ = std::move(s.norm_ranges);
  owned_ = std::move(s.owned);
  state_len_ = s.state_len;
  const int64_t padded_total = s.padded_total;
  Backend& be = model.backend();
  // The policy's rollout decode workspace is not needed while it trains (train/memory_plan.h plans
  // training without it); a later decode allocates it again.
  model.release_decode_workspace();
  // The gradient arena is padded so that the last bucket's W equal pieces lie inside it.
  const std::size_t gbytes = static_cast<std::size_t>(padded_total) * dtype_size(grad_dt_);
  const std::size_t sbytes = static_cast<std::size_t>(state_len_) * dtype_size(dt.grad) * slot_names().size();
  SPPO_CHECK(gbytes + sbytes <= be.available_memory(), "training needs ", format_bytes(double(gbytes)), " of ",
             dtype_name(grad_dt_), " gradients and ", format_bytes(double(sbytes)), " of optimizer state",
             master_ ? " (with the fp32 master weights)" : "", ", but the ", be.name(), " backend has ",
             format_bytes(double(be.available_memory())), " available");
  grads_ = Buffer(model.backend_ptr(), gbytes);
  state_ = Buffer(model.backend_ptr(), sbytes);
  scalars_ = Buffer(model.backend_ptr(), sizeof(double));
  be.zero(grads_.data(), grads_.bytes());
  be.zero(state_.data(), state_.bytes());
  if (master_) {
    const Tensor master = slot(master_slot());
    for (const OwnedRange& r : owned_)
      widen_into(be, model.weights().slice(r.begin, r.end - r.begin), master.slice(r.state_offset, r.end - r.begin));
  }
}

std::vector<std::string> Trainer::slot_names() const {
  std::vector<std::string> s = optimizer_slots(opts_.optimizer.kind);
  if (master_) s.push_back("master");
  return s;
}

int Trainer::master_slot() const {
  return master_ ? static_cast<int>(optimizer_slots(opts_.optimizer.kind).size()) : -1;
}

void Trainer::weights_from_master() {
  if (!master_) return;
  comm_->wait();
  const Tensor master = slot(master_slot());
  for (const OwnedRange& r : owned_)
    round_into(model_.backend(), master.slice(r.state_offset, r.end - r.begin),
               model_.weights().slice(r.begin, r.end - r.begin));
  if (sharded_) gather_weights();
  model_.backend().synchronize();
}

Trainer::~Trainer() {
  // A collective may still read the gradients (a step that failed half-way); it ends, or fails
  // when the communicator was aborted, before the arena goes.
  try {
    comm_->wait();
  } catch (...) {
  }
}

Tensor Trainer::gradient(const std::string& name) const {
  const int i = model_.layout().find(name);
  SPPO_CHECK(i >= 0, "no parameter named '", name, "'");
  const ParamSpec& p = model_.layout()[i];
  return gradients().slice(p.offset, p.numel);
}

Tensor Trainer::slot(int i) const {
  SPPO_CHECK(i >= 0 && i < static_cast<int>(slot_names().size()), "optimizer slot ", i, " does not exist");
  return state_.view(model_.dtypes().grad, state_len_,
                     static_cast<std::size_t>(i) * static_cast<std::size_t>(state_len_) * dtype_size(model_.dtypes().grad));
}

void Trainer::set_step_count(int64_t n) {
  SPPO_CHECK(n >= 0, "optimizer.load_state: step_count must be >= 0, got ", n);
  step_count_ = n;
}

void Trainer::reduce_ready(int64_t prefix) {
  const int world = comm_->world_size(), rank = comm_->rank();
  const int64_t total = model_.layout().total();
  const Tensor padded = grads_.view(grad_dt_, static_cast<int64_t>(grads_.bytes() / dtype_size(grad_dt_)));
  for (int b : tracker_.ready(prefix)) {
    const GradBucket& g = tracker_.buckets()[static_cast<size_t>(b)];
    if (sharded_) {
      const BucketPiece p = bucket_piece(g, rank, world, total);
      comm_->reduce_scatter(padded.slice(g.begin, p.padded_end - g.begin), padded.slice(g.begin + rank * p.per_rank, p.per_rank),
                            p.per_rank);
    } else {
      comm_->all_reduce(padded.slice(g.begin, g.end - g.begin), g.end - g.begin);
    }
    events_.push_back(BucketEvent{b, steady_seconds() - backward_began_, std::numeric_limits<double>::quiet_NaN()});
    event_ops_.push_back(comm_->queued() - 1);
  }
}

BackwardHooks Trainer::hooks_for_last_micro_batch() {
  tracker_.reset();
  events_.clear();
  event_ops_.clear();
  backward_began_ = steady_seconds();
  armed_ = true;
  BackwardHooks h;
  h.grads_ready = [this](int64_t prefix) { reduce_ready(prefix); };
  return h;
}

StepMetrics Trainer::accumulate(const PairBatch& pairs, LossType type, double beta, double scale, bool last) {
  SPPO_CHECK(std::isfinite(scale), "accumulate: scale must be finite (got ", scale, ")");
  if (!last) return preference_step(model_, pairs, type, beta, scale, gradients(), nullptr, loss_ws_);
  const BackwardHooks h = hooks_for_last_micro_batch();
  return preference_step(model_, pairs, type, beta, scale, gradients(), &h, loss_ws_);
}

StepResult Trainer::step(double lr, double max_grad_norm) {
  SPPO_CHECK(std::isfinite(lr) && lr >= 0, "optimizer step: lr must be >= 0 (got ", lr, ")");
  SPPO_CHECK(std::isfinite(max_grad_norm), "optimizer step: max_grad_norm must be finite (got ", max_grad_norm, ")");
  model_.cancel_point().check();
  Backend& be = model_.backend();
  if (!armed_) {  // no last micro-batch on this rank: every bucket is reduced here
    events_.clear();
    event_ops_.clear();
    backward_began_ = steady_seconds();
  }
  armed_ = false;
  reduce_ready(model_.layout().total());  // whatever backward did not reduce (or no hooks ran)
  comm_->wait();
  for (size_t i = 0; i < events_.size(); ++i) events_[i].reduced_seconds = comm_->finished_at(event_ops_[i]) - backward_began_;
  const Tensor sumsq = scalars_.view(DType::F64, 1);
  be.zero(sumsq.data, sizeof(double));
  const Tensor g = gradients();
  for (const OwnedRange& r : norm_ranges_) be.sum_squares(g.slice(r.begin, r.end - r.begin), r.end - r.begin, sumsq);
  if (comm_->world_size() > 1) {
    comm_->all_reduce(sumsq, 1);
    comm_->wait();
  }
  const OptimizerConfig& o = opts_.optimizer;
  for (const OwnedRange& r : owned_) {
    const int64_t n = r.end - r.begin;
    // bf16: the step updates the fp32 master and writes the bf16 weights (w16) in the same pass.
    const Tensor w = model_.weights().slice(r.begin, n), gs = g.slice(r.begin, n);
    const Tensor p = master_ ? slot(master_slot()).slice(r.state_offset, n) : w, w16 = master_ ? w : Tensor();
    if (o.kind == OptimizerKind::RMSprop) {
      RmspropParams h;
      h.lr = lr;
      h.alpha = o.alpha;
      h.eps = o.eps;
      h.weight_decay = o.weight_decay;
      be.rmsprop_step(p, gs, slot(0).slice(r.state_offset, n), n, h, sumsq, max_grad_norm, w16);
    } else {
      AdamwParams h;
      h.lr = lr;
      h.beta1 = o.beta1;
      h.beta2 = o.beta2;
      h.eps = o.eps;
      h.weight_decay = o.weight_decay;
      h.step = step_count_ + 1;
      be.adamw_step(p, gs, slot(0).slice(r.state_offset, n), slot(1).slice(r.state_offset, n), n, h, sumsq,
                    max_grad_norm, w16);
    }
  }
  if (sharded_) gather_weights();
  double ss = 0;
  be.download(&ss, sumsq.data, sizeof ss);  // the step boundary
  be.synchronize();
  const double norm = std::sqrt(ss);
  StepResult res{norm, std::isfinite(norm)};
  if (res.stepped) ++step_count_;
  zero_grad();
  return res;
}

void Trainer::gather_weights() {
  // Every rank gets every piece of the updated weights, bucket by bucket, in place; the last
  // bucket's padded form would run past the weights, so it goes through a staging buffer.
  Backend& be = model_.backend();
  const int world = comm_->world_size(), rank = comm_->rank();
  const int64_t total = model_.layout().total();
  const Tensor w = model_.weights();
  for (const GradBucket& b : tracker_.buckets()) {
    const BucketPiece p = bucket_piece(b, rank, world, total);
    if (p.padded_end <= total) {
      comm_->all_gather(w.slice(b.begin + rank * p.per_rank, p.per_rank), w.slice(b.begin, p.padded_end - b.begin), p.per_rank);
      continue;
    }
    ArenaPlan plan;
    plan.add("gathered", model_.dtypes().weight, p.padded_end - b.begin);
    const Tensor s = gather_ws_.take(plan)[0];
    be.zero(s.data, s.bytes());
    be.copy(s.data, w.slice(b.begin, total - b.begin).data, static_cast<std::size_t>(total - b.begin) * dtype_size(w.dtype));
    comm_->all_gather(s.slice(rank * p.per_rank, p.per_rank), s, p.per_rank);
    comm_->wait();
    be.copy(w.slice(b.begin, total - b.begin).data, s.data, static_cast<std::size_t>(total - b.begin) * dtype_size(w.dtype));
  }
  comm_->wait();
}

void Trainer::gather_slot(int i, float* host) {
  const Tensor st = slot(i);
  Backend& be = model_.backend();
  SPPO_CHECK(st.dtype == DType::F32, "gather_slot: optimizer state is ", dtype_name(st.dtype), ", not F32");
  const int64_t total = model_.layout().total();
  if (!sharded_) {
    if (host) be.download(host, st.data, static_cast<std::size_t>(total) * sizeof(float));
    return;
  }
  const int world = comm_->world_size(), rank = comm_->rank();
  size_t k = 0;  // next owned range (owned_ follows the bucket order, without empty pieces)
  for (const GradBucket& b : tracker_.buckets()) {
    const BucketPiece p = bucket_piece(b, rank, world, total);
    ArenaPlan plan;
    plan.add("gathered", DType::F32, p.padded_end - b.begin);
    const Tensor s = gather_ws_.take(plan)[0];
    be.zero(s.data, s.bytes());
    if (p.end > p.begin) {
      const OwnedRange& r = owned_[k++];
      be.copy(s.slice(rank * p.per_rank, p.end - p.begin).data, st.slice(r.state_offset, p.end - p.begin).data,
              static_cast<std::size_t>(p.end - p.begin) * sizeof(float));
    }
    comm_->all_gather(s.slice(rank * p.per_rank, p.per_rank), s, p.per_rank);
    comm_->wait();
    if (host) be.download(host + b.begin, s.data, static_cast<std::size_t>(std::min(b.end, total) - b.begin) * sizeof(float));
  }
}

void Trainer::zero_grad() {
  comm_->wait();  // a reduction still queued (a step abandoned after its last micro-batch) reads them
  model_.backend().zero(grads_.data(), grads_.bytes());
  tracker_.reset();
}

}  // namespace sppo
