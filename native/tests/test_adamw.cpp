// AdamW over a flat range (kernels/adamw.h) against a float64 closed form with bias correction and
// decoupled weight decay over several steps; clipping; a non-finite norm changes nothing.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/adamw.h"
#include "testing.h"

TEST(adamw_matches_float64_closed_form_with_weight_decay) {
  sppo_test::Rng rng(32);
  const int64_t n = 40007;
  std::vector<float> p(n), g(n), m(n, 0.f), v(n, 0.f);
  for (auto& x : p) x = static_cast<float>(rng.normal());
  std::vector<double> rp(p.begin(), p.end()), rm(n, 0.0), rv(n, 0.0);
  sppo::AdamwParams h;
  h.beta1 = rng.uniform(0.8, 0.95);
  h.beta2 = rng.uniform(0.99, 0.9999);
  h.weight_decay = 0.01;
  for (int step = 1; step <= 6; ++step) {
    double ss = 0;
    for (auto& x : g) {
      x = static_cast<float>(rng.normal(0, 0.3));
      ss += double(x) * x;
    }
    h.lr = rng.uniform(1e-3, 1e-2);
    h.step = step;
    const double max_norm = step == 3 ? 0.5 : 0.0;
    const double coef = max_norm > 0 ? std::min(1.0, max_norm / (std::sqrt(ss) + 1e-6)) : 1.0;
    sppo::cpu::adamw_step(p.data(), g.data(), m.data(), v.data(), n, h, &ss, max_norm);
    const double bc1 = 1 - std::pow(h.beta1, step), bc2 = 1 - std::pow(h.beta2, step);
    double worst = 0;
    for (int64_t j = 0; j < n; ++j) {
      const double gj = double(static_cast<float>(g[j] * static_cast<float>(coef)));
      rp[j] *= 1 - h.lr * h.weight_decay;
      rm[j] = h.beta1 * rm[j] + (1 - h.beta1) * gj;
      rv[j] = h.beta2 * rv[j] + (1 - h.beta2) * gj * gj;
      rp[j] -= h.lr / bc1 * rm[j] / (std::sqrt(rv[j]) / std::sqrt(bc2) + h.eps);
      worst = std::max(worst, std::fabs(p[j] - rp[j]) / (1 + std::fabs(rp[j])));
    }
    CHECK(worst < 2e-6);
  }
}

TEST(adamw_skips_a_non_finite_norm) {
  std::vector<float> p = {1, 2}, g = {0.5f, -1}, m = {0.1f, 0.2f}, v = {0.3f, 0.4f};
  const auto p0 = p, m0 = m, v0 = v;
  sppo::AdamwParams h;
  h.lr = 0.1;
  double ss = std::numeric_limits<double>::infinity();
  sppo::cpu::adamw_step(p.data(), g.data(), m.data(), v.data(), 2, h, &ss, 1.0);
  CHECK(p == p0 && m == m0 && v == v0);
}

TEST_MAIN()
