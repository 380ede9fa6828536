// Optimizer kinds, names and validation (train/optimizer_config.h).
#include "train/optimizer_config.h"

#include <cmath>

#include "core/error.h"

namespace sppo {

const char* optimizer_kind_name(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::RMSprop: return "rmsprop";
    case OptimizerKind::AdamW: return "adamw";
  }
  return "?";
}

OptimizerKind parse_optimizer_kind(const std::string& name) {
  for (OptimizerKind k : kOptimizerKinds)
    if (name == optimizer_kind_name(k)) return k;
  fail("optimizer: kind must be 'rmsprop' or 'adamw', got '", name, "'");
}

void validate_optimizer_config(const OptimizerConfig& c) {
  SPPO_CHECK(std::isfinite(c.eps) && c.eps > 0, "optimizer: eps must be > 0, got ", c.eps);
  SPPO_CHECK(std::isfinite(c.weight_decay) && c.weight_decay >= 0, "optimizer: weight_decay must be >= 0, got ",
             c.weight_decay);
  if (c.kind == OptimizerKind::RMSprop)
    SPPO_CHECK(c.alpha >= 0 && c.alpha < 1, "optimizer: alpha must be in [0, 1), got ", c.alpha);
  if (c.kind == OptimizerKind::AdamW) {
    SPPO_CHECK(c.beta1 >= 0 && c.beta1 < 1, "optimizer: beta1 must be in [0, 1), got ", c.beta1);
    SPPO_CHECK(c.beta2 >= 0 && c.beta2 < 1, "optimizer: beta2 must be in [0, 1), got ", c.beta2);
  }
}

std::vector<std::string> optimizer_slots(OptimizerKind k) {
  if (k == OptimizerKind::AdamW) return {"exp_avg", "exp_avg_sq"};
  return {"square_avg"};
}

}  // namespace sppo
