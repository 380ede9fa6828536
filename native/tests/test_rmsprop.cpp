// RMSprop over a flat range (kernels/rmsprop.h) against a float64 closed form over several steps,
// with L2 weight decay and clipping by a given sum of squares; a non-finite norm changes nothing.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/rmsprop.h"
#include "testing.h"

// Each step against a float64 step from the kernel's own state before it (so fp32 rounding does
// not compound across steps), over several steps with weight decay and clipping.
TEST(rmsprop_matches_a_float64_step_over_steps) {
  sppo_test::Rng rng(31);
  for (double wd : {0.0, 0.05}) {
    const int64_t n = 70001;  // crosses the kernel's chunks
    std::vector<float> p(n), g(n), v(n, 0.f);
    for (auto& x : p) x = static_cast<float>(rng.normal());
    sppo::RmspropParams h;
    h.alpha = rng.uniform(0.9, 0.999);
    h.weight_decay = wd;
    for (int step = 0; step < 5; ++step) {
      double ss = 0;
      for (auto& x : g) {
        x = static_cast<float>(rng.normal(0, 0.5));
        ss += double(x) * x;
      }
      h.lr = rng.uniform(1e-3, 1e-1);
      const double max_norm = step % 2 ? 1.0 : 0.0;  // clip on odd steps, off on even ones
      const double coef = max_norm > 0 ? std::min(1.0, max_norm / (std::sqrt(ss) + 1e-6)) : 1.0;
      const std::vector<float> p0 = p, v0 = v;
      sppo::cpu::rmsprop_step(p.data(), g.data(), v.data(), n, h, &ss, max_norm);
      double worst_p = 0, worst_v = 0;
      for (int64_t j = 0; j < n; ++j) {
        // The gradient as the fp32 kernel (and torch) forms it: clipped, plus weight decay, in fp32;
        // its cancellations are fp32's, so the float64 reference starts from the same value.
        const double gj = static_cast<float>(g[j] * static_cast<float>(coef)) + static_cast<float>(wd) * p0[j];
        const double vj = h.alpha * v0[j] + (1 - h.alpha) * gj * gj;
        const double pj = p0[j] - h.lr * gj / (std::sqrt(vj) + h.eps);
        worst_v = std::max(worst_v, std::fabs(v[j] - vj) / vj);
        // The update lr g / sqrt(v) is O(lr / sqrt(1 - alpha)): its fp32 rounding, relative to it.
        worst_p = std::max(worst_p, std::fabs(p[j] - pj) / (std::fabs(pj) + h.lr / std::sqrt(1 - h.alpha)));
      }
      if (!(worst_p < 1e-6 && worst_v < 1e-5)) std::printf("  step %d: worst p %.2e, v %.2e\n", step, worst_p, worst_v);
      CHECK(worst_p < 1e-6);
      CHECK(worst_v < 1e-5);
    }
  }
}

TEST(rmsprop_skips_a_non_finite_norm) {
  std::vector<float> p = {1, 2, 3}, g = {0.5f, -1, 2}, v = {0.1f, 0.2f, 0.3f};
  const auto p0 = p, v0 = v;
  sppo::RmspropParams h;
  h.lr = 0.1;
  for (double ss : {std::numeric_limits<double>::infinity(), std::nan("")}) {
    sppo::cpu::rmsprop_step(p.data(), g.data(), v.data(), 3, h, &ss, 1.0);
    CHECK(p == p0);
    CHECK(v == v0);
  }
}

TEST_MAIN()
