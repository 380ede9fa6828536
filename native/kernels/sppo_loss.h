// The SPPO loss family on per-sequence log-probabilities, forward and backward (CONTRACT:
// implemented in kernels/cpu/sppo_loss.cpp and kernels/cuda/sppo_loss.cu). DESIGN.md, with
// eta = 1/beta and s(y) = log pi_theta(y|x) - log pi_ref(y|x):
//   sppo:        L = 1/2 [(s_w - eta (p_w - 1/2))^2 + (s_l - eta (p_l - 1/2))^2]
//   sppo_single: L = 1/2 [(s_w - eta (P_wl - 1/2))^2 + (s_l + eta (P_wl - 1/2))^2]
//   sppo_hard:   L = (s_w - eta/2)^2 + (s_l + eta/2)^2
//   dpo:         L = -log sigmoid(beta (s_w - s_l))
//   ipo:         L = (s_w - s_l - 1/(2 beta))^2
// p_w = chosen_probs_win, p_l = chosen_probs_lose, P_wl = chosen_probs (the reference columns).
#pragma once
#include <cstdint>
#include <string>

namespace sppo {

enum class LossType : int { SPPO = 0, SPPO_SINGLE = 1, SPPO_HARD = 2, DPO = 3, IPO = 4 };

// Parses "sppo", "sppo_single", "sppo_hard", "dpo", "ipo"; throws sppo::Error naming the value.
LossType parse_loss_type(const std::string& name);
const char* loss_type_name(LossType t);

struct LossInputs {
  int64_t B = 0;
  const float* policy_chosen = nullptr;     // [B] log pi_theta(y_w|x)
  const float* policy_rejected = nullptr;   // [B]
  const float* ref_chosen = nullptr;        // [B] log pi_ref(y_w|x)
  const float* ref_rejected = nullptr;      // [B]
  const float* chosen_probs = nullptr;      // [B] P_wl         (sppo_single; may be null otherwise)
  const float* chosen_probs_win = nullptr;  // [B] p_w          (sppo; may be null otherwise)
  const float* chosen_probs_lose = nullptr; // [B] p_l          (sppo; may be null otherwise)
  double beta = 1e-3;                       // eta = 1/beta
  LossType type = LossType::SPPO;
};

struct LossOutputs {
  float* losses = nullptr;          // [B] per-example loss
  float* grad_chosen = nullptr;     // [B] d mean_loss / d policy_chosen   (nullable: skip backward)
  float* grad_rejected = nullptr;   // [B] d mean_loss / d policy_rejected (nullable)
  float* rewards_chosen = nullptr;  // [B] beta * s_w   (nullable)
  float* rewards_rejected = nullptr;// [B] beta * s_l   (nullable)
};

struct LossSummary {
  double loss = 0;              // mean over B
  double rewards_chosen = 0;    // mean beta * s_w
  double rewards_rejected = 0;  // mean beta * s_l
  double margins = 0;           // mean beta * (s_w - s_l)
  double accuracy = 0;          // fraction with s_w > s_l
};

namespace cpu {
// Validates inputs (finite, probabilities in [0,1], beta > 0) and throws sppo::Error naming the
// offending field and index.
LossSummary sppo_loss(const LossInputs& in, const LossOutputs& out);
}  // namespace cpu

#ifdef SPPO_WITH_CUDA
namespace cuda {
// Device pointers in `in` and `out`; the summary is reduced on the device and copied back.
LossSummary sppo_loss(const LossInputs& in, const LossOutputs& out, void* stream);
}  // namespace cuda
#endif

}  // namespace sppo
