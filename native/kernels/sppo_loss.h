// The SPPO loss family on per-sequence log-probabilities, forward and backward (CONTRACT:
// implemented in kernels/cpu/sppo_loss.cpp and kernels/cuda/sppo_loss.cu, which share the
// per-example math in sppo_loss_math.h). DESIGN.md, with
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

#include "runtime/cuda_launch.h"

namespace sppo {

enum class LossType : int { SPPO = 0, SPPO_SINGLE = 1, SPPO_HARD = 2, DPO = 3, IPO = 4 };

// Every loss type, in enum order: the list the addon exports (TypeScript's LOSS_TYPES must equal it).
constexpr LossType kLossTypes[] = {LossType::SPPO, LossType::SPPO_SINGLE, LossType::SPPO_HARD, LossType::DPO,
                                   LossType::IPO};

// Parses "sppo", "sppo_single", "sppo_hard", "dpo", "ipo"; throws sppo::Error naming the value.
LossType parse_loss_type(const std::string& name);
const char* loss_type_name(LossType t);

// T is float (the model's fp32 and bf16 modes, the addon's kernel) or double (fp64 test models).
template <typename T>
struct LossInputsT {
  int64_t B = 0;
  const T* policy_chosen = nullptr;     // [B] log pi_theta(y_w|x)
  const T* policy_rejected = nullptr;   // [B]
  const T* ref_chosen = nullptr;        // [B] log pi_ref(y_w|x)
  const T* ref_rejected = nullptr;      // [B]
  const T* chosen_probs = nullptr;      // [B] P_wl         (sppo_single; may be null otherwise)
  const T* chosen_probs_win = nullptr;  // [B] p_w          (sppo; may be null otherwise)
  const T* chosen_probs_lose = nullptr; // [B] p_l          (sppo; may be null otherwise)
  double beta = 1e-3;                   // eta = 1/beta
  LossType type = LossType::SPPO;
};

template <typename T>
struct LossOutputsT {
  T* losses = nullptr;           // [B] per-example loss (nullable)
  T* grad_chosen = nullptr;      // [B] grad_scale * d mean_loss / d policy_chosen   (nullable: skip backward)
  T* grad_rejected = nullptr;    // [B] grad_scale * d mean_loss / d policy_rejected (nullable)
  T* rewards_chosen = nullptr;   // [B] beta * s_w   (nullable)
  T* rewards_rejected = nullptr; // [B] beta * s_l   (nullable)
  // Summary (nullable): loss, rewards chosen, rewards rejected, margins, accuracy (LossSummary's
  // order) as 5 doubles in the backend's memory, so a training step reads it only at its end.
  double* summary = nullptr;
  double grad_scale = 1.0;       // e.g. 1 / accumulation steps, folded into the gradients
};

using LossInputs = LossInputsT<float>;
using LossOutputs = LossOutputsT<float>;

struct LossSummary {
  double loss = 0;              // mean over B
  double rewards_chosen = 0;    // mean beta * s_w
  double rewards_rejected = 0;  // mean beta * s_l
  double margins = 0;           // mean beta * (s_w - s_l)
  double accuracy = 0;          // fraction with s_w > s_l
};

namespace cpu {
// Validates inputs (finite, probabilities in [0,1], beta > 0) and throws sppo::Error naming the
// offending field and index; returns the summary (and writes out.summary when given).
template <typename T>
LossSummary sppo_loss(const LossInputsT<T>& in, const LossOutputsT<T>& out);
}  // namespace cpu

#ifdef SPPO_WITH_CUDA
namespace cuda {
// Device pointers in `in` and `out`; out.summary (device, 5 doubles) is required. Bad inputs are
// reported through the stream's deferred error word (runtime/device_errors.h), read at the step
// boundary with the CPU backend's messages.
void sppo_loss(const LossInputs& in, const LossOutputs& out, const Launch& launch);
}  // namespace cuda
#endif

}  // namespace sppo
