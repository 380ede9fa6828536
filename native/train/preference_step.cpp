// preference_step (train/preference_step.h).
#include "train/preference_step.h"

#include <algorithm>
#include <vector>

#include "core/error.h"

namespace sppo {

namespace {
// Chosen rows then rejected rows in one batch, right-padded to the longer side (mask 0), so a
// single forward/backward covers both.
struct Joined {
  std::vector<int32_t> tok;
  std::vector<uint8_t> mask, resp;
  TokenBatch batch;
};
Joined join(const TokenBatch& c, const TokenBatch& r) {
  Joined j;
  const int64_t T = std::max(c.T, r.T), B = c.B + r.B;
  j.tok.assign(B * T, 0);
  j.mask.assign(B * T, 0);
  j.resp.assign(B * T, 0);
  auto put = [&](const TokenBatch& s, int64_t row0) {
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t t = 0; t < s.T; ++t) {
        const int64_t d = (row0 + b) * T + t, i = b * s.T + t;
        j.tok[d] = s.tokens[i];
        j.mask[d] = s.attention_mask[i];
        j.resp[d] = s.response_mask[i];
      }
  };
  put(c, 0);
  put(r, c.B);
  j.batch = TokenBatch{B, T, j.tok.data(), j.mask.data(), j.resp.data()};
  return j;
}

// Host floats into a backend tensor of `dt` (F32 or F64).
void upload_as(Backend& be, const float* src, int64_t n, const Tensor& dst) {
  if (dst.dtype == DType::F32) {
    be.upload(dst.data, src, static_cast<std::size_t>(n) * sizeof(float));
    return;
  }
  std::vector<double> d(src, src + n);
  be.upload(dst.data, d.data(), d.size() * sizeof(double));
}
}  // namespace

ArenaPlan preference_loss_plan(const Dtypes& dt, int64_t B) {
  ArenaPlan plan;
  for (const char* name : {"ref_chosen", "ref_rejected", "probs", "probs_win", "probs_lose"}) plan.add(name, dt.stat, B);
  plan.add("grad_seq", dt.stat, 2 * B);
  plan.add("summary", DType::F64, 5);
  return plan;
}

StepMetrics preference_step(LlamaModel& model, const PairBatch& pairs, LossType type, double beta, double scale,
                            const Tensor& grads, const BackwardHooks* hooks, Workspace& ws) {
  const TokenBatch& c = pairs.chosen;
  const TokenBatch& r = pairs.rejected;
  SPPO_CHECK(c.B == r.B, "loss_and_backward: chosen has ", c.B, " rows but rejected has ", r.B);
  model.check_batch(c, "loss_and_backward chosen", true);
  model.check_batch(r, "loss_and_backward rejected", true);
  for (const float* p : {pairs.ref_chosen, pairs.ref_rejected, pairs.chosen_probs, pairs.chosen_probs_win,
                         pairs.chosen_probs_lose})
    SPPO_CHECK(p != nullptr, "loss_and_backward: a reference or probability column is null");
  const int64_t B = c.B;
  const Dtypes dt = model.dtypes();
  Backend& be = model.backend();
  Joined j = join(c, r);
  const Tensor seq = model.forward_train(j.batch, TrainHead::LogProbs);  // [2B]
  const auto v = ws.take(preference_loss_plan(dt, B));
  upload_as(be, pairs.ref_chosen, B, v[0]);
  upload_as(be, pairs.ref_rejected, B, v[1]);
  upload_as(be, pairs.chosen_probs, B, v[2]);
  upload_as(be, pairs.chosen_probs_win, B, v[3]);
  upload_as(be, pairs.chosen_probs_lose, B, v[4]);
  const Tensor gseq = v[5], summary = v[6];
  LossTensors in{seq.slice(0, B), seq.slice(B, B), v[0], v[1], v[2], v[3], v[4]};
  LossResultTensors out;
  out.grad_chosen = gseq.slice(0, B);
  out.grad_rejected = gseq.slice(B, B);
  out.summary = summary;
  out.grad_scale = scale;
  be.sppo_loss(type, beta, B, in, out);
  model.backward_train(gseq, grads, hooks);
  // The micro-batch boundary: read the metrics once.
  double sum[5];
  be.download(sum, summary.data, sizeof sum);
  std::vector<double> lp(static_cast<size_t>(2 * B));
  if (dt.stat == DType::F64) {
    be.download(lp.data(), seq.data, lp.size() * sizeof(double));
  } else {
    std::vector<float> f(lp.size());
    be.download(f.data(), seq.data, f.size() * sizeof(float));
    std::copy(f.begin(), f.end(), lp.begin());
  }
  be.synchronize();
  StepMetrics m;
  m.summary = LossSummary{sum[0], sum[1], sum[2], sum[3], sum[4]};
  for (int64_t b = 0; b < B; ++b) {
    m.policy_chosen_logp += lp[static_cast<size_t>(b)] / static_cast<double>(B);
    m.policy_rejected_logp += lp[static_cast<size_t>(B + b)] / static_cast<double>(B);
  }
  for (uint8_t x : j.mask) m.tokens += x;
  return m;
}

}  // namespace sppo
