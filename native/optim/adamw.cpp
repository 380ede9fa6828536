// torch.optim.AdamW: decoupled weight decay, then Adam with bias correction,
//   p *= 1 - lr wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
//   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
#include <cmath>

#include "model/cpu/par.h"
#include "optim/slotted_optimizer.h"

namespace sppo {
namespace {

class AdamW final : public SlottedOptimizer {
 public:
  AdamW(const OptimizerConfig& cfg, const std::vector<ParamRef>& params)
      : SlottedOptimizer(params, {"exp_avg", "exp_avg_sq"}), cfg_(cfg) {}

  void step(std::vector<ParamRef>& params, double lr) override {
    check_params(params);
    const double b1 = cfg_.beta1, b2 = cfg_.beta2, eps = cfg_.eps, wd = cfg_.weight_decay;
    const int64_t t = step_ + 1;
    const double bc1 = 1.0 - std::pow(b1, static_cast<double>(t));
    const double bc2_sqrt = std::sqrt(1.0 - std::pow(b2, static_cast<double>(t)));
    const double step_size = lr / bc1;
    for (size_t i = 0; i < params.size(); ++i) {
      float* p = params[i].data;
      const float* gr = params[i].grad;
      float* m = slots_[0][i].data();
      float* v = slots_[1][i].data();
      parallel_for_cost(sizes_[i], 20.0, [&](int64_t j) {
        const double g = gr[j];
        const double pj = static_cast<double>(p[j]) * (1.0 - lr * wd);
        const double mj = b1 * m[j] + (1.0 - b1) * g;
        const double vj = b2 * v[j] + (1.0 - b2) * g * g;
        m[j] = static_cast<float>(mj);
        v[j] = static_cast<float>(vj);
        p[j] = static_cast<float>(pj - step_size * mj / (std::sqrt(vj) / bc2_sqrt + eps));
      });
    }
    step_ = t;
  }

 private:
  OptimizerConfig cfg_;
};

}  // namespace

std::unique_ptr<Optimizer> make_adamw(const OptimizerConfig& cfg, const std::vector<ParamRef>& params) {
  return std::make_unique<AdamW>(cfg, params);
}

}  // namespace sppo
