// Names of the SPPO loss family (kernels/sppo_loss.h), shared by the CPU and CUDA backends.
#include <string>

#include "core/error.h"
#include "kernels/sppo_loss.h"

namespace sppo {

LossType parse_loss_type(const std::string& name) {
  if (name == "sppo") return LossType::SPPO;
  if (name == "sppo_single") return LossType::SPPO_SINGLE;
  if (name == "sppo_hard") return LossType::SPPO_HARD;
  if (name == "dpo") return LossType::DPO;
  if (name == "ipo") return LossType::IPO;
  fail("unknown loss type '", name, "' (expected sppo, sppo_single, sppo_hard, dpo or ipo)");
}

const char* loss_type_name(LossType t) {
  switch (t) {
    case LossType::SPPO: return "sppo";
    case LossType::SPPO_SINGLE: return "sppo_single";
    case LossType::SPPO_HARD: return "sppo_hard";
    case LossType::DPO: return "dpo";
    case LossType::IPO: return "ipo";
  }
  return "?";
}

}  // namespace sppo
