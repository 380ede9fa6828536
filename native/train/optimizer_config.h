// Optimizer settings with PyTorch's semantics (CONTRACT; the per-element math is
// kernels/optim_math.h). RMSprop: torch.optim.RMSprop defaults (alpha 0.99, eps 1e-8, no
// momentum, not centered, weight decay as an L2 term). AdamW: betas 0.9/0.999, eps 1e-8,
// decoupled weight decay.
#pragma once
#include <string>
#include <vector>

namespace sppo {

enum class OptimizerKind : int { RMSprop = 0, AdamW = 1 };

// Every kind, in enum order, with its name: the list the addon exports (TypeScript's
// OPTIMIZER_KINDS must equal it).
constexpr OptimizerKind kOptimizerKinds[] = {OptimizerKind::RMSprop, OptimizerKind::AdamW};
const char* optimizer_kind_name(OptimizerKind k);
OptimizerKind parse_optimizer_kind(const std::string& name);  // throws naming the value

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::RMSprop;
  double alpha = 0.99;                // rmsprop
  double beta1 = 0.9, beta2 = 0.999;  // adamw
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// Throws sppo::Error naming the field when a setting is out of range.
void validate_optimizer_config(const OptimizerConfig& c);

// The state slots of a kind, as named in checkpoints ("<param>.<slot>"): RMSprop {square_avg},
// AdamW {exp_avg, exp_avg_sq} (PyTorch's names).
std::vector<std::string> optimizer_slots(OptimizerKind k);

}  // namespace sppo
