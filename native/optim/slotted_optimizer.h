// Shared machinery of the element-wise optimizers: per-parameter state slots, the check that
// step() gets the same parameters the optimizer was made for, and state()/load_state().
#pragma once
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace sppo {

class SlottedOptimizer : public Optimizer {
 public:
  SlottedOptimizer(const std::vector<ParamRef>& params, std::vector<std::string> slot_names);
  int64_t step_count() const override { return step_; }
  std::vector<OptimizerState> state() const override;
  void load_state(const std::vector<OptimizerState>& state, int64_t step_count) override;

 protected:
  // Throws when params differ in count, names or sizes from those given at construction.
  void check_params(const std::vector<ParamRef>& params) const;
  std::vector<std::string> names_;
  std::vector<int64_t> sizes_;
  std::vector<std::string> slot_names_;
  std::vector<std::vector<std::vector<float>>> slots_;  // [slot][param][element]
  int64_t step_ = 0;
};

std::unique_ptr<Optimizer> make_rmsprop(const OptimizerConfig& cfg, const std::vector<ParamRef>& params);
std::unique_ptr<Optimizer> make_adamw(const OptimizerConfig& cfg, const std::vector<ParamRef>& params);

}  // namespace sppo
