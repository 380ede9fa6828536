// The PairRM head and compare() (model/pairrm_model.h): the slot rows gathered so that each
// sequence gives two [2H] rows [e_s; e_1] and [e_s; e_2], then Linear(2H, H), tanh, Linear(H,
// tasks); the difference of the two rows' outputs, averaged over tasks, on the host.
#include <vector>

#include "core/error.h"
#include "model/pairrm_impl.h"

namespace sppo {

Tensor PairRmModel::Impl::head() {
  const int64_t H = cfg.hidden_size, T = cfg.num_tasks, R = 2 * S;
  ArenaPlan plan;
  plan.add("pairs", dt.act, R * 2 * H);
  plan.add("hidden", dt.act, R * H);
  plan.add("out", dt.act, R * T);
  const auto v = head_ws.take(plan);
  Backend& b = *be;
  b.gather_rows(xa, N, head_rows, 4 * S, H, v[0]);
  b.matmul(v[0], W(layout.head1.w), v[1], R, H, 2 * H, false, true, false);
  b.bias_act(v[1], W(layout.head1.b), R, H, Activation::Tanh, v[1]);
  b.matmul(v[1], W(layout.head2.w), v[2], R, T, H, false, true, false);
  b.bias_act(v[2], W(layout.head2.b), R, T, Activation::Identity, v[2]);
  return v[2];
}

void PairRmModel::compare(const PairBatch& b, const Tensor& out) {
  Impl& m = *impl_;
  check_batch(b, "compare");
  require(out, out.dtype, b.S, "compare", "output");
  m.prepare_batch(b);
  m.encode();
  const Tensor scores = m.head();
  const int64_t T = m.cfg.num_tasks;
  std::vector<double> host(static_cast<size_t>(2 * m.S * T));
  m.download_as(scores, Tensor(host.data(), DType::F64, static_cast<int64_t>(host.size())), 2 * m.S * T);
  m.be->synchronize();  // deferred device errors (the attention's start/rel_index checks) before results
  for (int64_t s = 0; s < m.S; ++s) {
    double d = 0;
    for (int64_t t = 0; t < T; ++t) d += host[static_cast<size_t>((2 * s) * T + t)] - host[static_cast<size_t>((2 * s + 1) * T + t)];
    d /= static_cast<double>(T);
    if (out.dtype == DType::F64) out.as<double>()[s] = d;
    else if (out.dtype == DType::F32) out.as<float>()[s] = static_cast<float>(d);
    else fail("compare: outputs are F32 or F64 (got ", dtype_name(out.dtype), ")");
  }
}

}  // namespace sppo
