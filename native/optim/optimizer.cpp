// make_optimizer, clip_grad_norm and the shared state handling of SlottedOptimizer.
#include "optim/optimizer.h"

#include <cmath>

#include "core/error.h"
#include "model/cpu/par.h"
#include "optim/slotted_optimizer.h"

namespace sppo {

SlottedOptimizer::SlottedOptimizer(const std::vector<ParamRef>& params, std::vector<std::string> slot_names)
    : slot_names_(std::move(slot_names)) {
  for (const auto& p : params) {
    SPPO_CHECK(p.data && p.grad, "optimizer: parameter '", p.name, "' has no data or gradient");
    names_.push_back(p.name);
    sizes_.push_back(p.numel());
  }
  slots_.resize(slot_names_.size());
  for (auto& s : slots_) {
    s.resize(params.size());
    for (size_t i = 0; i < params.size(); ++i) s[i].assign(sizes_[i], 0.0f);
  }
}

void SlottedOptimizer::check_params(const std::vector<ParamRef>& params) const {
  SPPO_CHECK(params.size() == names_.size(), "optimizer.step: got ", params.size(),
             " parameters, the optimizer was made for ", names_.size());
  for (size_t i = 0; i < params.size(); ++i) {
    SPPO_CHECK(params[i].name == names_[i] && params[i].numel() == sizes_[i], "optimizer.step: parameter ", i,
               " is '", params[i].name, "' (", params[i].numel(), " elements), expected '", names_[i], "' (",
               sizes_[i], ")");
    SPPO_CHECK(params[i].data && params[i].grad, "optimizer.step: parameter '", params[i].name,
               "' has no data or gradient");
  }
}

std::vector<OptimizerState> SlottedOptimizer::state() const {
  std::vector<OptimizerState> out;
  for (size_t i = 0; i < names_.size(); ++i)
    for (size_t s = 0; s < slot_names_.size(); ++s) out.push_back({names_[i] + "." + slot_names_[s], slots_[s][i]});
  return out;
}

void SlottedOptimizer::load_state(const std::vector<OptimizerState>& state, int64_t step_count) {
  SPPO_CHECK(step_count >= 0, "optimizer.load_state: step_count must be >= 0, got ", step_count);
  // Validate everything before changing anything.
  std::vector<std::vector<const OptimizerState*>> found(slot_names_.size(),
                                                        std::vector<const OptimizerState*>(names_.size()));
  for (size_t i = 0; i < names_.size(); ++i)
    for (size_t s = 0; s < slot_names_.size(); ++s) {
      const std::string key = names_[i] + "." + slot_names_[s];
      for (const auto& e : state)
        if (e.name == key) found[s][i] = &e;
      SPPO_CHECK(found[s][i], "optimizer.load_state: missing state '", key, "'");
      SPPO_CHECK(static_cast<int64_t>(found[s][i]->data.size()) == sizes_[i], "optimizer.load_state: '", key,
                 "' has ", found[s][i]->data.size(), " elements, expected ", sizes_[i]);
    }
  SPPO_CHECK(state.size() == names_.size() * slot_names_.size(), "optimizer.load_state: got ", state.size(),
             " state entries, expected ", names_.size() * slot_names_.size());
  for (size_t s = 0; s < slot_names_.size(); ++s)
    for (size_t i = 0; i < names_.size(); ++i) slots_[s][i] = found[s][i]->data;
  step_ = step_count;
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, const std::vector<ParamRef>& params) {
  SPPO_CHECK(std::isfinite(cfg.eps) && cfg.eps > 0, "optimizer: eps must be > 0, got ", cfg.eps);
  SPPO_CHECK(std::isfinite(cfg.weight_decay) && cfg.weight_decay >= 0, "optimizer: weight_decay must be >= 0, got ",
             cfg.weight_decay);
  if (cfg.kind == "rmsprop") {
    SPPO_CHECK(cfg.alpha >= 0 && cfg.alpha < 1, "optimizer: alpha must be in [0, 1), got ", cfg.alpha);
    return make_rmsprop(cfg, params);
  }
  if (cfg.kind == "adamw") {
    SPPO_CHECK(cfg.beta1 >= 0 && cfg.beta1 < 1, "optimizer: beta1 must be in [0, 1), got ", cfg.beta1);
    SPPO_CHECK(cfg.beta2 >= 0 && cfg.beta2 < 1, "optimizer: beta2 must be in [0, 1), got ", cfg.beta2);
    return make_adamw(cfg, params);
  }
  fail("optimizer: kind must be 'rmsprop' or 'adamw', got '", cfg.kind, "'");
}

double clip_grad_norm(std::vector<ParamRef>& params, double max_norm) {
  double ss = 0;
  for (const auto& p : params) {
    const int64_t n = p.numel();
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(p.grad[i]) * p.grad[i];
  }
  const double norm = std::sqrt(ss);
  if (!std::isfinite(norm) || max_norm <= 0) return norm;
  const double coef = max_norm / (norm + 1e-6);  // torch.nn.utils.clip_grad_norm_
  if (coef < 1.0) {
    const float c = static_cast<float>(coef);
    for (auto& p : params) {
      float* g = p.grad;
      parallel_for_cost(p.numel(), 1.0, [&](int64_t i) { g[i] *= c; });
    }
  }
  return norm;
}

}  // namespace sppo
