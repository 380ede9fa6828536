// RMSprop over a flat range (kernels/rmsprop.h) against a float64 closed form over several steps,
// with L2 weight decay and clipping by a given sum of squares; a non-finite norm changes nothing.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/rmsprop.h"
#include "testing.h"

TEST(rmsprop_matches_float64_closed_form_over_steps) {
  sppo_test::Rng rng(31);
  for (double wd : {0.0, 0.05}) {
    const int64_t n = 70001;  // crosses the kernel's chunks
    std::vector<float> p(n), g(n), v(n, 0.f);
    for (auto& x : p) x = static_cast<float>(rng.normal());
    std::vector<double> rp(p.begin(), p.end()), rv(n, 0.0);
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
      sppo::cpu::rmsprop_step(p.data(), g.data(), v.data(), n, h, &ss, max_norm);
      double worst = 0;
      for (int64_t j = 0; j < n; ++j) {
        const double gj = double(static_cast<float>(g[j] * static_cast<float>(coef))) + wd * rp[j];
        rv[j] = h.alpha * rv[j] + (1 - h.alpha) * gj * gj;
        rp[j] -= h.lr * gj / (std::sqrt(rv[j]) + h.eps);
        worst = std::max(worst, std::fabs(p[j] - rp[j]) / (1 + std::fabs(rp[j])));
      }
      CHECK(worst < 2e-6);
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
