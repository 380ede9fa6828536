// CPU (reference) implementation of kernels/sppo_loss.h. B is a batch of pairs (small), so
// validation is serial and the math runs in double.
#include "kernels/sppo_loss.h"

#include <cmath>

#include "core/error.h"
#include "kernels/sppo_loss_math.h"

namespace sppo {
namespace cpu {
namespace {

template <typename T>
void check_finite(const T* x, int64_t B, const char* field) {
  SPPO_CHECK(x != nullptr, field, " must not be null");
  for (int64_t i = 0; i < B; ++i)
    SPPO_CHECK(std::isfinite(x[i]), field, "[", i, "] is not finite (", x[i], ")");
}

template <typename T>
void check_prob(const T* x, int64_t B, const char* field, const char* loss) {
  SPPO_CHECK(x != nullptr, field, " is required by loss '", loss, "'");
  for (int64_t i = 0; i < B; ++i)
    SPPO_CHECK(std::isfinite(x[i]) && x[i] >= T(0) && x[i] <= T(1), field, "[", i, "] = ", x[i],
               " is not a probability in [0, 1]");
}

}  // namespace

template <typename T>
LossSummary sppo_loss(const LossInputsT<T>& in, const LossOutputsT<T>& out) {
  const int64_t B = in.B;
  SPPO_CHECK(B > 0, "B must be > 0 (got ", B, ")");
  SPPO_CHECK(std::isfinite(in.beta) && in.beta > 0, "beta must be finite and > 0 (got ", in.beta, ")");
  const char* name = loss_type_name(in.type);
  SPPO_CHECK(std::string(name) != "?", "unknown loss type ", static_cast<int>(in.type));
  check_finite(in.policy_chosen, B, "policy_chosen");
  check_finite(in.policy_rejected, B, "policy_rejected");
  check_finite(in.ref_chosen, B, "ref_chosen");
  check_finite(in.ref_rejected, B, "ref_rejected");
  if (in.type == LossType::SPPO_SINGLE) check_prob(in.chosen_probs, B, "chosen_probs", name);
  if (in.type == LossType::SPPO) {
    check_prob(in.chosen_probs_win, B, "chosen_probs_win", name);
    check_prob(in.chosen_probs_lose, B, "chosen_probs_lose", name);
  }

  double loss = 0, rc = 0, rr = 0, acc = 0;
  const double invB = 1.0 / static_cast<double>(B), gs = out.grad_scale;
  for (int64_t i = 0; i < B; ++i) {
    const double s_w = double(in.policy_chosen[i]) - double(in.ref_chosen[i]);
    const double s_l = double(in.policy_rejected[i]) - double(in.ref_rejected[i]);
    const double p = in.type == LossType::SPPO_SINGLE ? in.chosen_probs[i] : 0.0;
    const double pw = in.type == LossType::SPPO ? in.chosen_probs_win[i] : 0.0;
    const double pl = in.type == LossType::SPPO ? in.chosen_probs_lose[i] : 0.0;
    const loss_math::Example e = loss_math::example(in.type, in.beta, s_w, s_l, p, pw, pl);
    if (out.losses) out.losses[i] = static_cast<T>(e.loss);
    if (out.grad_chosen) out.grad_chosen[i] = static_cast<T>(e.d_chosen * invB * gs);
    if (out.grad_rejected) out.grad_rejected[i] = static_cast<T>(e.d_rejected * invB * gs);
    if (out.rewards_chosen) out.rewards_chosen[i] = static_cast<T>(in.beta * s_w);
    if (out.rewards_rejected) out.rewards_rejected[i] = static_cast<T>(in.beta * s_l);
    loss += e.loss;
    rc += in.beta * s_w;
    rr += in.beta * s_l;
    acc += s_w > s_l ? 1.0 : 0.0;
  }
  LossSummary s;
  s.loss = loss * invB;
  s.rewards_chosen = rc * invB;
  s.rewards_rejected = rr * invB;
  s.margins = (rc - rr) * invB;
  s.accuracy = acc * invB;
  if (out.summary) {
    out.summary[0] = s.loss;
    out.summary[1] = s.rewards_chosen;
    out.summary[2] = s.rewards_rejected;
    out.summary[3] = s.margins;
    out.summary[4] = s.accuracy;
  }
  return s;
}

template LossSummary sppo_loss<float>(const LossInputsT<float>&, const LossOutputsT<float>&);
template LossSummary sppo_loss<double>(const LossInputsT<double>&, const LossOutputsT<double>&);

}  // namespace cpu
}  // namespace sppo
