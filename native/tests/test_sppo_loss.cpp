// CPU SPPO loss family against a float64 reference written here from DESIGN.md, on fresh random
// inputs; gradients of the mean loss against central finite differences of the reference; the
// double instantiation (fp64 test models) and the summary it writes to backend memory.
#include <cmath>
#include <string>
#include <vector>

#include "kernels/sppo_loss.h"
#include "testing.h"

using namespace sppo;
using sppo_test::Rng;

namespace {

struct Batch {
  int64_t B;
  std::vector<float> pc, pr, rc, rr, p, pw, pl;
};

Batch make_batch(Rng& rng, int64_t B, double spread) {
  Batch b{B, {}, {}, {}, {}, {}, {}, {}};
  for (int64_t i = 0; i < B; ++i) {
    double base_c = -rng.uniform(5, 300), base_r = -rng.uniform(5, 300);
    b.rc.push_back(float(base_c));
    b.rr.push_back(float(base_r));
    b.pc.push_back(float(base_c + rng.normal(0, spread)));
    b.pr.push_back(float(base_r + rng.normal(0, spread)));
    double pw = rng.uniform(0, 1), pl = rng.uniform(0, 1);
    if (i == 0) pw = 1, pl = 0;  // the ends of [0, 1]
    b.pw.push_back(float(pw));
    b.pl.push_back(float(pl));
    b.p.push_back(float(rng.uniform(0, 1)));
  }
  return b;
}

// Per-example loss in double, straight from DESIGN.md (log1p form of -log sigmoid for dpo).
double ref_example(LossType t, double beta, double pc, double pr, double rc, double rr, double p, double pw,
                   double pl) {
  const double eta = 1 / beta, sw = pc - rc, sl = pr - rr;
  switch (t) {
    case LossType::SPPO: return 0.5 * (std::pow(sw - eta * (pw - 0.5), 2) + std::pow(sl - eta * (pl - 0.5), 2));
    case LossType::SPPO_SINGLE: return 0.5 * (std::pow(sw - eta * (p - 0.5), 2) + std::pow(sl + eta * (p - 0.5), 2));
    case LossType::SPPO_HARD: return std::pow(sw - eta / 2, 2) + std::pow(sl + eta / 2, 2);
    case LossType::DPO: {
      double z = beta * (sw - sl);  // -log sigmoid(z) = log(1 + e^{-z})
      return z > 0 ? std::log1p(std::exp(-z)) : -z + std::log1p(std::exp(z));
    }
    case LossType::IPO: return std::pow(sw - sl - 1 / (2 * beta), 2);
  }
  return NAN;
}

double ref_mean(LossType t, double beta, const std::vector<double>& pc, const std::vector<double>& pr, const Batch& b) {
  double s = 0;
  for (int64_t i = 0; i < b.B; ++i) s += ref_example(t, beta, pc[i], pr[i], b.rc[i], b.rr[i], b.p[i], b.pw[i], b.pl[i]);
  return s / double(b.B);
}

LossInputs inputs_of(const Batch& b, LossType t, double beta) {
  LossInputs in;
  in.B = b.B;
  in.policy_chosen = b.pc.data();
  in.policy_rejected = b.pr.data();
  in.ref_chosen = b.rc.data();
  in.ref_rejected = b.rr.data();
  in.chosen_probs = b.p.data();
  in.chosen_probs_win = b.pw.data();
  in.chosen_probs_lose = b.pl.data();
  in.beta = beta;
  in.type = t;
  return in;
}

const LossType kAll[] = {LossType::SPPO, LossType::SPPO_SINGLE, LossType::SPPO_HARD, LossType::DPO, LossType::IPO};

void check_type(Rng& rng, LossType t, double eta, int64_t B, double spread) {
  Batch b = make_batch(rng, B, spread);
  const double beta = 1 / eta;
  std::vector<float> losses(B), gc(B), gr(B), rwc(B), rwr(B);
  LossSummary s = cpu::sppo_loss(inputs_of(b, t, beta), {losses.data(), gc.data(), gr.data(), rwc.data(), rwr.data()});
  std::vector<double> pc(b.pc.begin(), b.pc.end()), pr(b.pr.begin(), b.pr.end());
  double mean = 0, mrc = 0, mrr = 0, acc = 0;
  for (int64_t i = 0; i < B; ++i) {
    double want = ref_example(t, beta, pc[i], pr[i], b.rc[i], b.rr[i], b.p[i], b.pw[i], b.pl[i]);
    CHECK_CLOSE(losses[i], want, 1e-6, 1e-6);
    double sw = pc[i] - double(b.rc[i]), sl = pr[i] - double(b.rr[i]);
    CHECK_CLOSE(rwc[i], beta * sw, 1e-9, 1e-6);
    CHECK_CLOSE(rwr[i], beta * sl, 1e-9, 1e-6);
    mean += want;
    mrc += beta * sw;
    mrr += beta * sl;
    acc += sw > sl;
    // d mean / d policy by central differences of the double reference; quadratics are exact
    // up to rounding, dpo is smooth.
    for (int side = 0; side < 2; ++side) {
      std::vector<double>& x = side == 0 ? pc : pr;
      const double h = 1e-5 * (1 + std::fabs(x[i])), x0 = x[i];
      x[i] = x0 + h;
      double fp = ref_mean(t, beta, pc, pr, b);
      x[i] = x0 - h;
      double fm = ref_mean(t, beta, pc, pr, b);
      x[i] = x0;
      double fd = (fp - fm) / (2 * h);
      // FD rounding: eps * |f| / h.
      double atol = 1e-6 + 4e-16 * std::fabs(ref_mean(t, beta, pc, pr, b)) / h;
      CHECK_CLOSE(side == 0 ? gc[i] : gr[i], fd, atol, 1e-5);
    }
  }
  CHECK_CLOSE(s.loss, mean / B, 1e-9, 1e-9);
  CHECK_CLOSE(s.rewards_chosen, mrc / B, 1e-9, 1e-9);
  CHECK_CLOSE(s.rewards_rejected, mrr / B, 1e-9, 1e-9);
  CHECK_CLOSE(s.margins, (mrc - mrr) / B, 1e-9, 1e-9);
  CHECK_CLOSE(s.accuracy, acc / B, 1e-12, 0);
}

}  // namespace

TEST(every_loss_matches_reference_and_finite_differences) {
  Rng rng(11);
  for (LossType t : kAll)
    for (double eta : {1.0, 10.0, 1000.0, 1e4})
      for (int64_t B : {1, 2, 17}) check_type(rng, t, eta, B, 3.0);
}

// The double instantiation: the same reference, tighter, with gradients scaled by grad_scale and
// the summary written to its 5 doubles.
void check_type_f64(Rng& rng, LossType t, double eta, int64_t B) {
  Batch b = make_batch(rng, B, 3.0);
  const double beta = 1 / eta, scale = rng.uniform(0.1, 2);
  std::vector<double> pc(b.pc.begin(), b.pc.end()), pr(b.pr.begin(), b.pr.end()), rc(b.rc.begin(), b.rc.end()),
      rr(b.rr.begin(), b.rr.end()), p(b.p.begin(), b.p.end()), pw(b.pw.begin(), b.pw.end()),
      pl(b.pl.begin(), b.pl.end());
  LossInputsT<double> in;
  in.B = B;
  in.policy_chosen = pc.data();
  in.policy_rejected = pr.data();
  in.ref_chosen = rc.data();
  in.ref_rejected = rr.data();
  in.chosen_probs = p.data();
  in.chosen_probs_win = pw.data();
  in.chosen_probs_lose = pl.data();
  in.beta = beta;
  in.type = t;
  std::vector<double> losses(B, NAN), gc(B, NAN), gr(B, NAN), summary(5, NAN);
  LossOutputsT<double> out;
  out.losses = losses.data();
  out.grad_chosen = gc.data();
  out.grad_rejected = gr.data();
  out.summary = summary.data();
  out.grad_scale = scale;
  const LossSummary sum = cpu::sppo_loss(in, out);
  double mean = 0;
  for (int64_t i = 0; i < B; ++i) {
    const double want = ref_example(t, beta, pc[i], pr[i], rc[i], rr[i], p[i], pw[i], pl[i]);
    CHECK_CLOSE(losses[i], want, 1e-12, 1e-12);
    mean += want / B;
    for (int side = 0; side < 2; ++side) {
      std::vector<double>& x = side == 0 ? pc : pr;
      const double h = 1e-5 * (1 + std::fabs(x[i])), x0 = x[i];
      x[i] = x0 + h;
      const double fp = ref_mean(t, beta, pc, pr, b);
      x[i] = x0 - h;
      const double fm = ref_mean(t, beta, pc, pr, b);
      x[i] = x0;
      const double atol = 1e-7 + 4e-16 * std::fabs(ref_mean(t, beta, pc, pr, b)) / h;
      CHECK_CLOSE(side == 0 ? gc[i] : gr[i], scale * (fp - fm) / (2 * h), atol, 1e-6);
    }
  }
  CHECK_CLOSE(sum.loss, mean, 1e-12, 1e-12);
  const double fields[5] = {sum.loss, sum.rewards_chosen, sum.rewards_rejected, sum.margins, sum.accuracy};
  for (int k = 0; k < 5; ++k) CHECK(summary[k] == fields[k]);
}

TEST(every_loss_in_double_matches_reference_and_finite_differences) {
  Rng rng(15);
  for (LossType t : kAll)
    for (double eta : {1.0, 1000.0})
      for (int64_t B : {1, 3, 17}) check_type_f64(rng, t, eta, B);
}

TEST(dpo_is_stable_at_extreme_margins) {
  Rng rng(12);
  for (double eta : {1.0, 1e4}) {
    const double beta = 1 / eta;
    for (double margin : {-1e5, -1e3, 1e3, 1e5}) {
      float pc = float(-rng.uniform(1, 10)), pr = float(-rng.uniform(1, 10)), rc = pc - float(margin / 2),
            rr = pr + float(margin / 2);
      float loss, gc, gr;
      LossInputs in;
      in.B = 1;
      in.policy_chosen = &pc;
      in.policy_rejected = &pr;
      in.ref_chosen = &rc;
      in.ref_rejected = &rr;
      in.beta = beta;
      in.type = LossType::DPO;
      cpu::sppo_loss(in, {&loss, &gc, &gr, nullptr, nullptr});
      double want = ref_example(LossType::DPO, beta, pc, pr, rc, rr, 0, 0, 0);
      CHECK(std::isfinite(loss) && std::isfinite(gc) && std::isfinite(gr));
      CHECK_CLOSE(loss, want, 1e-6, 1e-6);
      CHECK(gc <= 0 && gr >= 0);
      CHECK_CLOSE(gc, -gr, 0, 0);
    }
  }
}

TEST(optional_outputs_and_unused_columns) {
  Rng rng(13);
  Batch b = make_batch(rng, 5, 2.0);
  for (LossType t : kAll) {
    LossInputs in = inputs_of(b, t, 0.1);
    if (t != LossType::SPPO_SINGLE) in.chosen_probs = nullptr;
    if (t != LossType::SPPO) in.chosen_probs_win = in.chosen_probs_lose = nullptr;
    std::vector<float> losses(5);
    LossSummary s = cpu::sppo_loss(in, {losses.data(), nullptr, nullptr, nullptr, nullptr});
    double m = 0;
    for (float l : losses) m += l;
    CHECK_CLOSE(s.loss, m / 5, 1e-6, 1e-6);
  }
}

TEST(loss_type_names_round_trip) {
  for (LossType t : kAll) CHECK(parse_loss_type(loss_type_name(t)) == t);
  CHECK_THROWS_WITH(parse_loss_type("kto"), "unknown loss type 'kto'");
  CHECK_THROWS_WITH(parse_loss_type("SPPO"), "unknown loss type 'SPPO'");
}

TEST(bad_input_throws_naming_the_field) {
  Rng rng(14);
  Batch b = make_batch(rng, 4, 1.0);
  std::vector<float> losses(4);
  LossOutputs out{losses.data(), nullptr, nullptr, nullptr, nullptr};
  LossInputs in = inputs_of(b, LossType::SPPO, 1e-3);
  in.beta = 0;
  CHECK_THROWS_WITH(cpu::sppo_loss(in, out), "beta must be");
  in.beta = -1;
  CHECK_THROWS_WITH(cpu::sppo_loss(in, out), "beta must be");
  in.beta = NAN;
  CHECK_THROWS_WITH(cpu::sppo_loss(in, out), "beta must be");
  in.beta = 1e-3;
  in.B = 0;
  CHECK_THROWS_WITH(cpu::sppo_loss(in, out), "B must be > 0");
  in.B = 4;
  b.pw[2] = 1.5f;
  CHECK_THROWS_WITH(cpu::sppo_loss(in, out), "chosen_probs_win[2] = 1.5");
  b.pw[2] = 0.5f;
  b.pl[3] = -0.25f;
  CHECK_THROWS_WITH(cpu::sppo_loss(in, out), "chosen_probs_lose[3]");
  b.pl[3] = 0.5f;
  b.pr[1] = NAN;
  CHECK_THROWS_WITH(cpu::sppo_loss(in, out), "policy_rejected[1] is not finite");
  b.pr[1] = -3.f;
  b.rc[0] = INFINITY;
  CHECK_THROWS_WITH(cpu::sppo_loss(in, out), "ref_chosen[0] is not finite");
  b.rc[0] = -3.f;
  in.chosen_probs_win = nullptr;
  CHECK_THROWS_WITH(cpu::sppo_loss(in, out), "chosen_probs_win is required by loss 'sppo'");
  in.type = LossType::SPPO_SINGLE;
  b.p[0] = NAN;
  CHECK_THROWS_WITH(cpu::sppo_loss(in, out), "chosen_probs[0]");
  in.type = static_cast<LossType>(42);
  CHECK_THROWS_WITH(cpu::sppo_loss(in, out), "unknown loss type");
}

TEST_MAIN()
