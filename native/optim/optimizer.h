// Optimizers with PyTorch's semantics (CONTRACT; implemented in native/optim/*.cpp).
//   RMSprop (torch.optim.RMSprop defaults: alpha 0.99, eps 1e-8, no momentum, not centered):
//     v = alpha v + (1 - alpha) g^2;  p -= lr g / (sqrt(v) + eps)
//   AdamW (betas 0.9/0.999, eps 1e-8, decoupled weight decay):
//     p *= 1 - lr wd;  m,v updates;  p -= lr mhat / (sqrt(vhat) + eps)
// Gradient clipping by global norm: torch.nn.utils.clip_grad_norm_ (coef = max/(norm+1e-6), clamped to 1).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/llama.h"

namespace sppo {

struct OptimizerConfig {
  std::string kind = "rmsprop";  // "rmsprop" | "adamw" (validated; sppo::Error otherwise)
  double alpha = 0.99;           // rmsprop
  double beta1 = 0.9, beta2 = 0.999;  // adamw
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// A named state buffer, for checkpointing and resume: "<param name>.<slot>" (e.g. ".square_avg").
struct OptimizerState {
  std::string name;
  std::vector<float> data;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void step(std::vector<ParamRef>& params, double lr) = 0;
  virtual int64_t step_count() const = 0;
  virtual std::vector<OptimizerState> state() const = 0;
  virtual void load_state(const std::vector<OptimizerState>& state, int64_t step_count) = 0;
};

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, const std::vector<ParamRef>& params);

// Returns the global L2 norm of all gradients before clipping; scales them when above max_norm
// (max_norm <= 0 disables clipping). Non-finite norm: returns it and leaves gradients unchanged.
double clip_grad_norm(std::vector<ParamRef>& params, double max_norm);

}  // namespace sppo
