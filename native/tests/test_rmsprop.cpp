// RMSprop over a flat range (kernels/rmsprop.h) against a float64 step written here from the
// formula in optim_math.h, in float and double, with L2 weight decay and clipping by a given sum
// of squares; a non-finite norm changes nothing; short tensors are refused by name.
//
// Each step is checked from the state the kernel holds (so rounding does not compound across
// steps) against a bound on T's rounding error derived from the step's own conditioning: when
// g + wd p nearly cancels, sqrt(v) is near eps and the update is sensitive to that sum's
// rounding, which a fixed tolerance cannot absorb (it made this suite fail about 1 run in 4).
// alpha enters as T holds it: the op computes 1 - alpha in T, which amplifies alpha's rounding
// by 1 / (1 - alpha).
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/rmsprop.h"
#include "op_testing.h"

using namespace sppo_test;

namespace {

struct Expected {
  double p, v, tol_p, tol_v;
};

// One element's step in float64 and the error T's arithmetic may make on it.
template <typename T>
Expected rmsprop_ref(double p, double gs, double v, const sppo::RmspropParams& h) {
  const double e = std::numeric_limits<T>::epsilon(), a = double(T(h.alpha));
  const double ge = gs + h.weight_decay * p;
  const double v1 = a * v + (1 - a) * ge * ge;
  const double d = std::sqrt(v1) + h.eps, u = h.lr * ge / d;
  // d u / d ge, through ge itself and through v1.
  const double sens = v1 > 0 ? (h.lr / d) * std::fabs(1 - (1 - a) * ge * ge / (std::sqrt(v1) * d)) : h.lr / d;
  const double dge = 2 * e * (std::fabs(gs) + std::fabs(h.weight_decay * p));  // rounding of gs + wd p
  return {p - u, v1, 2 * (8 * e * (std::fabs(p - u) + std::fabs(u)) + 2 * sens * dge),
          2 * (8 * e * v1 + 2 * (1 - a) * std::fabs(ge) * dge)};
}

template <typename T>
void check_steps(uint64_t salt) {
  Rng rng(salt);
  for (int64_t n : {1, 7, 70001})  // 70001 crosses the kernel's chunks
    for (double wd : {0.0, 0.05}) {
      auto p = randn<T>(rng, n);
      std::vector<T> g(n), v(n, T(0));
      sppo::RmspropParams h;
      h.alpha = rng.uniform(0.9, 0.999);
      h.weight_decay = wd;
      for (int step = 0; step < 5; ++step) {
        double ss = 0;
        for (auto& x : g) {
          x = static_cast<T>(rng.normal(0, 0.5));
          ss += double(x) * x;
        }
        h.lr = rng.uniform(1e-3, 1e-1);
        const double max_norm = step % 2 ? 1.0 : 0.0;  // clip on odd steps, off on even ones
        const double coef = max_norm > 0 ? std::min(1.0, max_norm / (std::sqrt(ss) + 1e-6)) : 1.0;
        std::vector<Expected> want(n);
        for (int64_t j = 0; j < n; ++j)
          want[j] = rmsprop_ref<T>(p[j], double(T(g[j] * T(coef))), v[j], h);
        sppo::cpu::rmsprop_step(p.data(), g.data(), v.data(), n, h, &ss, max_norm);
        int bad = 0;
        for (int64_t j = 0; j < n; ++j) {
          const Expected& w = want[j];
          if (std::fabs(p[j] - w.p) <= w.tol_p && std::fabs(v[j] - w.v) <= w.tol_v) continue;
          if (++bad <= 3)
            std::printf("  step %d [%lld]: p %.10g v %.10g, expected %.10g (tol %.3g) %.10g (tol %.3g)\n", step,
                        (long long)j, double(p[j]), double(v[j]), w.p, w.tol_p, w.v, w.tol_v);
        }
        CHECK(bad == 0);
      }
    }
}

}  // namespace

TEST(rmsprop_matches_float64_steps_in_float) { check_steps<float>(31); }
TEST(rmsprop_matches_float64_steps_in_double) { check_steps<double>(35); }

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

TEST(sizes_are_checked_naming_the_argument) {
  auto be = cpu_backend();
  std::vector<float> p(5, 1.f), g(5, 0.1f), v(5, 0.f);
  std::vector<double> ss = {0.05};
  std::vector<float> ss32 = {0.05f};
  sppo::RmspropParams h;
  h.lr = 0.1;
  CHECK_THROWS_WITH(be->rmsprop_step(view(p, 1), view(g), view(v), 5, h, view(ss), 1.0),
                    "rmsprop_step: p has 4 elements, needs 5");
  CHECK_THROWS_WITH(be->rmsprop_step(view(p), view(g, 1), view(v), 5, h, view(ss), 1.0), "rmsprop_step: g");
  CHECK_THROWS_WITH(be->rmsprop_step(view(p), view(g), view(v, 1), 5, h, view(ss), 1.0), "rmsprop_step: v");
  CHECK_THROWS_WITH(be->rmsprop_step(view(p), view(g), view(v), 5, h, view(ss32), 1.0),
                    "rmsprop_step: sum_squares must be F64");
  CHECK(p[0] == 1.f && v[0] == 0.f);  // nothing was stepped
  be->rmsprop_step(view(p), view(g), view(v), 5, h, view(ss), 1.0);
  CHECK(p[0] < 1.f && v[0] > 0.f);
}

TEST_MAIN()
