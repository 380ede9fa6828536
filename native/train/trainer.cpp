// Trainer (train/trainer.h).
#include "train/trainer.h"

#include <chrono>
#include <cmath>

#include "core/error.h"

namespace sppo {

namespace {
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

Trainer::Trainer(LlamaModel& model, std::shared_ptr<Communicator> comm, const TrainerOptions& options)
    : model_(model),
      comm_(std::move(comm)),
      opts_(options),
      tracker_(plan_buckets(model.layout(),
                            std::max<int64_t>(1, options.bucket_bytes /
                                                     static_cast<int64_t>(dtype_size(model.dtypes().grad))))),
      loss_ws_(model.backend_ptr(), "the loss"),
      gather_ws_(model.backend_ptr(), "the weight gather") {
  validate_optimizer_config(opts_.optimizer);
  SPPO_CHECK(comm_ != nullptr, "trainer: no communicator");
  SPPO_CHECK(model.dtypes().weight == model.dtypes().grad,
             "trainer: fp32 master weights for a ", precision_name(model.precision()),
             " model come with the CUDA engine");
  const Dtypes dt = model.dtypes();
  const int64_t total = model.layout().total(), world = comm_->world_size(), rank = comm_->rank();
  if (opts_.zero1 && world > 1) {
    shard_len_ = (total + world - 1) / world;
    shard_begin_ = std::min(total, rank * shard_len_);
    shard_end_ = std::min(total, shard_begin_ + shard_len_);
  } else {
    shard_len_ = total;
    shard_begin_ = 0;
    shard_end_ = total;
  }
  Backend& be = model.backend();
  const std::size_t gbytes = static_cast<std::size_t>(total) * dtype_size(dt.grad);
  const std::size_t sbytes = static_cast<std::size_t>(shard_len_) * dtype_size(dt.grad) * slot_names().size();
  SPPO_CHECK(gbytes + sbytes <= be.available_memory(), "training needs ", format_bytes(double(gbytes)),
             " of gradients and ", format_bytes(double(sbytes)), " of optimizer state, but the ", be.name(),
             " backend has ", format_bytes(double(be.available_memory())), " available");
  grads_ = Buffer(model.backend_ptr(), gbytes);
  state_ = Buffer(model.backend_ptr(), sbytes);
  scalars_ = Buffer(model.backend_ptr(), sizeof(double));
  be.zero(grads_.data(), grads_.bytes());
  be.zero(state_.data(), state_.bytes());
}

Tensor Trainer::gradient(const std::string& name) const {
  const int i = model_.layout().find(name);
  SPPO_CHECK(i >= 0, "no parameter named '", name, "'");
  const ParamSpec& p = model_.layout()[i];
  return gradients().slice(p.offset, p.numel);
}

Tensor Trainer::slot(int i) const {
  SPPO_CHECK(i >= 0 && i < static_cast<int>(slot_names().size()), "optimizer slot ", i, " does not exist");
  return state_.view(model_.dtypes().grad, shard_len_,
                     static_cast<std::size_t>(i) * static_cast<std::size_t>(shard_len_) * dtype_size(model_.dtypes().grad))
      .slice(0, shard_end_ - shard_begin_);
}

void Trainer::set_step_count(int64_t n) {
  SPPO_CHECK(n >= 0, "optimizer.load_state: step_count must be >= 0, got ", n);
  step_count_ = n;
}

void Trainer::reduce_ready(int64_t prefix) {
  for (int b : tracker_.ready(prefix)) {
    const GradBucket& g = tracker_.buckets()[static_cast<size_t>(b)];
    comm_->all_reduce(gradients().slice(g.begin, g.end - g.begin), g.end - g.begin);
    events_.push_back(BucketEvent{b, now_seconds() - backward_began_});
  }
}

BackwardHooks Trainer::hooks_for_last_micro_batch() {
  tracker_.reset();
  events_.clear();
  backward_began_ = now_seconds();
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
  reduce_ready(model_.layout().total());  // whatever backward did not reduce (or no hooks ran)
  const Tensor sumsq = scalars_.view(DType::F64, 1);
  be.zero(sumsq.data, sizeof(double));
  const Tensor g = gradients();
  const int64_t n = shard_end_ - shard_begin_;
  if (shard_len_ == model_.layout().total()) {
    be.sum_squares(g, g.numel, sumsq);
  } else {
    be.sum_squares(g.slice(shard_begin_, n), n, sumsq);
    comm_->all_reduce(sumsq, 1);
  }
  const Tensor p = model_.weights().slice(shard_begin_, n), gs = g.slice(shard_begin_, n);
  const OptimizerConfig& o = opts_.optimizer;
  if (o.kind == OptimizerKind::RMSprop) {
    RmspropParams h;
    h.lr = lr;
    h.alpha = o.alpha;
    h.eps = o.eps;
    h.weight_decay = o.weight_decay;
    be.rmsprop_step(p, gs, slot(0), n, h, sumsq, max_grad_norm);
  } else {
    AdamwParams h;
    h.lr = lr;
    h.beta1 = o.beta1;
    h.beta2 = o.beta2;
    h.eps = o.eps;
    h.weight_decay = o.weight_decay;
    h.step = step_count_ + 1;
    be.adamw_step(p, gs, slot(0), slot(1), n, h, sumsq, max_grad_norm);
  }
  if (shard_len_ != model_.layout().total()) {
    // Every rank gets every shard of the updated weights (padded to equal shards).
    const int64_t world = comm_->world_size();
    ArenaPlan plan;
    plan.add("send", model_.dtypes().weight, shard_len_);
    plan.add("gathered", model_.dtypes().weight, shard_len_ * world);
    const auto v = gather_ws_.take(plan);
    be.zero(v[0].data, v[0].bytes());
    be.copy(v[0].data, p.data, p.bytes());
    comm_->all_gather(v[0], v[1], shard_len_);
    be.copy(model_.weights().data, v[1].data, model_.weights().bytes());
  }
  double ss = 0;
  be.download(&ss, sumsq.data, sizeof ss);  // the step boundary
  be.synchronize();
  const double norm = std::sqrt(ss);
  StepResult r{norm, std::isfinite(norm)};
  if (r.stepped) ++step_count_;
  zero_grad();
  return r;
}

void Trainer::zero_grad() {
  model_.backend().zero(grads_.data(), grads_.bytes());
  tracker_.reset();
}

}  // namespace sppo
