// PairRmModel: weights, batch checks and upload, memory plans (the forward is in
// deberta_encoder.cpp and pairrm_head.cpp).
#include "model/pairrm_model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/pairrm_impl.h"
#include "model/relative_position.h"
#include "model/weight_arena.h"

namespace sppo {

namespace {
ArenaPlan activation_plan(const PairRmConfig& c, const Dtypes& dt, int64_t N, int64_t rel_rows) {
  const int64_t H = c.hidden_size;
  ArenaPlan plan;
  for (const char* name : {"xa", "xb", "q", "k", "v", "att", "x1"}) plan.add(name, dt.act, N * H);
  plan.add("ffn", dt.act, N * c.intermediate_size);
  plan.add("rel", dt.act, rel_rows * H);
  plan.add("pos_q", dt.act, rel_rows * H);
  plan.add("pos_k", dt.act, rel_rows * H);
  return plan;
}
}  // namespace

PairRmModel::Impl::Impl(std::shared_ptr<Backend> b, const PairRmConfig& c, Precision p)
    : be(std::move(b)), cfg(c), prec(p), dt(dtypes_of(p)), layout(c), batch_ws(be, "the PairRM batch"),
      act_ws(be, "the PairRM activations"), head_ws(be, "the PairRM head") {
  check_precision_on(*be, p);
  weights = zeroed_weights(be, dt.weight, layout.total(), "the PairRM weights");
}

Tensor PairRmModel::Impl::W(int i) const {
  const ParamSpec& p = layout[i];
  return weights.view(dt.weight, p.numel, static_cast<std::size_t>(p.offset) * dtype_size(dt.weight));
}

PairRmModel::PairRmModel(std::shared_ptr<Backend> backend, const PairRmConfig& config, Precision precision)
    : impl_(std::make_unique<Impl>(std::move(backend), config, precision)) {}
PairRmModel::~PairRmModel() = default;

const PairRmConfig& PairRmModel::config() const { return impl_->cfg; }
Precision PairRmModel::precision() const { return impl_->prec; }
Dtypes PairRmModel::dtypes() const { return impl_->dt; }
Backend& PairRmModel::backend() const { return *impl_->be; }
const PairRmLayout& PairRmModel::layout() const { return impl_->layout; }
Tensor PairRmModel::param(int i) const {
  SPPO_CHECK(i >= 0 && i < static_cast<int>(impl_->layout.params().size()), "parameter index ", i, " out of range");
  return impl_->W(i);
}
Tensor PairRmModel::param(const std::string& name) const {
  const int i = impl_->layout.find(name);
  SPPO_CHECK(i >= 0, "no parameter named '", name, "'");
  return impl_->W(i);
}
void PairRmModel::set_cancel(CancelPoint c) { impl_->cancel = c; }

void PairRmModel::init_random(uint64_t seed, double std) {
  SPPO_CHECK(std::isfinite(std) && std >= 0, "init_random: std must be finite and >= 0, got ", std);
  Impl& m = *impl_;
  uint64_t s = seed;
  for (size_t i = 0; i < m.layout.params().size(); ++i) {
    const ParamSpec& p = m.layout[static_cast<int>(i)];
    const bool norm_weight = p.shape.size() == 1 && p.name.find("LayerNorm.weight") != std::string::npos;
    std::vector<double> v(static_cast<size_t>(p.numel), norm_weight ? 1.0 : 0.0);
    if (p.shape.size() == 2) fill_normal(v, s, std);
    upload_values(*m.be, m.W(static_cast<int>(i)), v);
  }
}

void PairRmModel::check_batch(const PairBatch& b, const char* what) const {
  constexpr int64_t kMax = int64_t(1) << 31;
  SPPO_CHECK(b.S > 0 && b.S < kMax, what, ": the batch needs at least one sequence, got ", b.S);
  SPPO_CHECK(b.lengths && b.tokens && b.slots, what, ": lengths, tokens and slots are required");
  const int64_t V = impl_->cfg.vocab_size;
  int64_t at = 0;
  for (int64_t s = 0; s < b.S; ++s) {
    const int64_t L = b.lengths[s];
    SPPO_CHECK(L >= 1, what, ": sequence ", s, " has length ", L, " (must be >= 1)");
    SPPO_CHECK(at + L < kMax, what, ": the batch holds more than 2^31 tokens");
    for (int c = 0; c < 3; ++c) {
      const int32_t p = b.slots[s * 3 + c];
      SPPO_CHECK(p >= 0 && p < L, what, ": slot ", c, " of sequence ", s, " is at position ", p,
                 ", outside the sequence (length ", L, ")");
    }
    for (int64_t t = 0; t < L; ++t) {
      const int32_t id = b.tokens[at + t];
      SPPO_CHECK(id >= 0 && id < V, what, ": token ", t, " of sequence ", s, " is ", id,
                 ", outside the vocabulary [0, ", V, ")");
    }
    at += L;
  }
}

void PairRmModel::Impl::prepare_batch(const PairBatch& b) {
  S = b.S;
  start_h.assign(static_cast<size_t>(S + 1), 0);
  max_len = 0;
  for (int64_t s = 0; s < S; ++s) {
    start_h[static_cast<size_t>(s + 1)] = start_h[static_cast<size_t>(s)] + b.lengths[s];
    max_len = std::max<int64_t>(max_len, b.lengths[s]);
  }
  N = start_h[static_cast<size_t>(S)];
  ids_h.assign(b.tokens, b.tokens + N);
  // Only the relative rows the longest sequence reaches are normalized and projected.
  rel_h = relative_rows(cfg, max_len);
  const auto [lo, hi] = std::minmax_element(rel_h.begin(), rel_h.end());
  rel_lo = *lo;
  rel_rows = *hi - *lo + 1;
  for (auto& r : rel_h) r -= static_cast<int32_t>(rel_lo);
  head_rows_h.resize(static_cast<size_t>(4 * S));
  for (int64_t s = 0; s < S; ++s) {
    const int32_t base = start_h[static_cast<size_t>(s)];
    const int32_t* sl = b.slots + 3 * s;
    // [e_s; e_1] and [e_s; e_2] as two consecutive [2H] rows of the gathered block.
    const int32_t rows[4] = {base + sl[0], base + sl[1], base + sl[0], base + sl[2]};
    std::copy(rows, rows + 4, head_rows_h.begin() + 4 * s);
  }
  ArenaPlan plan;
  plan.add("ids", DType::I32, N);
  plan.add("start", DType::I32, S + 1);
  plan.add("rel_index", DType::I32, static_cast<int64_t>(rel_h.size()));
  plan.add("head_rows", DType::I32, 4 * S);
  auto v = batch_ws.take(plan);
  ids = v[0];
  start = v[1];
  rel_index = v[2];
  head_rows = v[3];
  be->upload(ids.data, ids_h.data(), ids.bytes());
  be->upload(start.data, start_h.data(), start.bytes());
  be->upload(rel_index.data, rel_h.data(), rel_index.bytes());
  be->upload(head_rows.data, head_rows_h.data(), head_rows.bytes());
}

void PairRmModel::Impl::plan_activations() {
  const auto views = act_ws.take(activation_plan(cfg, dt, N, rel_rows));
  size_t at = 0;
  for (Tensor* t : {&xa, &xb, &q, &k, &v, &att, &x1, &ffn, &rel, &pos_q, &pos_k}) *t = views[at++];
}

PairRmMemoryPlan PairRmModel::memory_plan(int64_t tokens, int64_t sequences) const {
  return plan(impl_->cfg, impl_->prec, tokens, sequences);
}

PairRmMemoryPlan PairRmModel::plan(const PairRmConfig& c, Precision precision, int64_t tokens, int64_t sequences) {
  const Dtypes dt = dtypes_of(precision);
  PairRmMemoryPlan p;
  ArenaPlan weights;
  weights.add("weights", dt.weight, PairRmLayout(c).total());
  p.weights = weights.bytes();
  p.activations = activation_plan(c, dt, tokens, 2 * relative_span(c)).bytes();
  const int64_t H = c.hidden_size;
  p.activations += static_cast<std::size_t>(sequences) *
                   static_cast<std::size_t>(4 * H + 2 * H + 2 * c.num_tasks) * dtype_size(dt.act);
  p.activations += static_cast<std::size_t>(tokens + sequences + 1 + 2 * tokens + 4 * sequences) * 4;
  return p;
}

void PairRmModel::Impl::download_as(const Tensor& src, const Tensor& out, int64_t n) const {
  sppo::download_as(*be, src, out, n);
}

void PairRmModel::hidden_states(const PairBatch& b, const Tensor& out) {
  Impl& m = *impl_;
  check_batch(b, "hidden_states");
  int64_t n = 0;
  for (int64_t s = 0; s < b.S; ++s) n += b.lengths[s];
  require(out, out.dtype, n * m.cfg.hidden_size, "hidden_states", "output");
  m.prepare_batch(b);
  m.encode();
  m.download_as(m.xa, out, m.N * m.cfg.hidden_size);
  m.be->synchronize();  // the call's boundary: a device backend's deferred errors are thrown here
}

}  // namespace sppo
