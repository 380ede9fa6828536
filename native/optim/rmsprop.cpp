// torch.optim.RMSprop (no momentum, not centered): weight decay is added to the gradient (L2),
//   v = alpha v + (1 - alpha) g^2;  p -= lr g / (sqrt(v) + eps).
#include <cmath>

#include "model/cpu/par.h"
#include "optim/slotted_optimizer.h"

namespace sppo {
namespace {

class RMSprop final : public SlottedOptimizer {
 public:
  RMSprop(const OptimizerConfig& cfg, const std::vector<ParamRef>& params)
      : SlottedOptimizer(params, {"square_avg"}), cfg_(cfg) {}

  void step(std::vector<ParamRef>& params, double lr) override {
    check_params(params);
    const double a = cfg_.alpha, eps = cfg_.eps, wd = cfg_.weight_decay;
    for (size_t i = 0; i < params.size(); ++i) {
      float* p = params[i].data;
      const float* gr = params[i].grad;
      float* v = slots_[0][i].data();
      parallel_for_cost(sizes_[i], 10.0, [&](int64_t j) {
        const double g = static_cast<double>(gr[j]) + wd * p[j];
        const double vj = a * v[j] + (1.0 - a) * g * g;
        v[j] = static_cast<float>(vj);
        p[j] = static_cast<float>(p[j] - lr * g / (std::sqrt(vj) + eps));
      });
    }
    ++step_;
  }

 private:
  OptimizerConfig cfg_;
};

}  // namespace

std::unique_ptr<Optimizer> make_rmsprop(const OptimizerConfig& cfg, const std::vector<ParamRef>& params) {
  return std::make_unique<RMSprop>(cfg, params);
}

}  // namespace sppo
