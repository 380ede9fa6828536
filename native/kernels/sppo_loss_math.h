// The per-example math of the SPPO loss family, shared by the CPU backend and the CUDA kernel
// (host/device). Gradients are of the per-example loss; callers divide by B for the mean.
#pragma once
#include <cmath>

#include "kernels/sppo_loss.h"

#if defined(__CUDACC__)
#define SPPO_HD __host__ __device__
#else
#define SPPO_HD
#endif

namespace sppo {
namespace loss_math {

struct Example {
  double loss, d_chosen, d_rejected;  // dL/d policy_chosen, dL/d policy_rejected
};

// -log sigmoid(z) = softplus(-z), stable for any z.
SPPO_HD inline double softplus_neg(double z) {
  return z >= 0 ? std::log1p(std::exp(-z)) : -z + std::log1p(std::exp(z));
}
// sigmoid(-z), stable.
SPPO_HD inline double sigmoid_neg(double z) {
  if (z >= 0) {
    double e = std::exp(-z);
    return e / (1 + e);
  }
  return 1 / (1 + std::exp(z));
}

// s_w, s_l: policy minus reference log-probs; p, pw, pl: the probability columns (unused ones 0).
SPPO_HD inline Example example(LossType type, double beta, double s_w, double s_l, double p,
                               double pw, double pl) {
  const double eta = 1.0 / beta;
  Example e{0, 0, 0};
  switch (type) {
    case LossType::SPPO: {
      double a = s_w - eta * (pw - 0.5), c = s_l - eta * (pl - 0.5);
      e = {0.5 * (a * a + c * c), a, c};
      break;
    }
    case LossType::SPPO_SINGLE: {
      double a = s_w - eta * (p - 0.5), c = s_l + eta * (p - 0.5);
      e = {0.5 * (a * a + c * c), a, c};
      break;
    }
    case LossType::SPPO_HARD: {
      double a = s_w - 0.5 * eta, c = s_l + 0.5 * eta;
      e = {a * a + c * c, 2 * a, 2 * c};
      break;
    }
    case LossType::DPO: {
      double z = beta * (s_w - s_l);
      double sg = sigmoid_neg(z);  // d/dz of softplus(-z) is -sigmoid(-z)
      e = {softplus_neg(z), -beta * sg, beta * sg};
      break;
    }
    case LossType::IPO: {
      double d = s_w - s_l - 0.5 * eta;
      e = {d * d, 2 * d, -2 * d};
      break;
    }
  }
  return e;
}

}  // namespace loss_math
}  // namespace sppo
