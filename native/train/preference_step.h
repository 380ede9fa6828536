// The SPPO training micro-batch (CONTRACT): chosen and rejected sides joined into one batch, one
// forward of the policy, the loss on the device (kernels/sppo_loss.h), one backward into a
// gradient arena. Inputs in host memory.
#pragma once
#include <cstdint>

#include "backend/workspace.h"
#include "kernels/sppo_loss.h"
#include "model/llama_model.h"

namespace sppo {

struct PairBatch {
  TokenBatch chosen;    // B pairs
  TokenBatch rejected;  // same B
  const float* ref_chosen = nullptr;        // [B] log pi_ref, computed once per iteration
  const float* ref_rejected = nullptr;
  const float* chosen_probs = nullptr;      // [B]
  const float* chosen_probs_win = nullptr;  // [B]
  const float* chosen_probs_lose = nullptr; // [B]
};

struct StepMetrics {
  LossSummary summary;
  double policy_chosen_logp = 0;    // means over the batch
  double policy_rejected_logp = 0;
  int64_t tokens = 0;               // real tokens processed (both sides)
};

// Forward both sides, the loss (gradients scaled by `scale`, e.g. 1 / accumulation steps),
// backward adding into `grads` (the model's layout; dtypes().grad, or BF16 for a bf16 model). hooks: see BackwardHooks.
// `ws` holds the loss's small buffers (the caller's, on the model's backend).
// The loss's buffers for B pairs (taken from `ws`; the static planner sizes them too).
ArenaPlan preference_loss_plan(const Dtypes& dt, int64_t B);

StepMetrics preference_step(LlamaModel& model, const PairBatch& pairs, LossType type, double beta, double scale,
                            const Tensor& grads, const BackwardHooks* hooks, Workspace& ws);

}  // namespace sppo
