// AdamW over a flat range (kernels/adamw.h) against a float64 step written here from the formula
// in optim_math.h (bias correction, decoupled weight decay), in float and double over several
// steps with clipping; in float, the bf16 weights the step writes (w16) are the RNE rounding of the
// updated master, bit for bit, and writing them changes nothing else; a non-finite norm changes
// nothing, w16 included; short tensors are refused by name.
//
// Each step is checked from the state the kernel holds against a bound on T's rounding error from
// the step's own conditioning (a fixed tolerance on a trajectory evolved separately in float64
// failed about 1 run in 150). beta2, 1 - beta1 and 1 - beta2 enter as T holds them: the op
// computes 1 - beta in double and rounds it once (as torch passes it), never 1 - T(beta), whose
// rounding 1 / (1 - beta) would amplify (up to 1e4 for beta2 = 0.9999).
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "kernels/adamw.h"
#include "op_testing.h"

using namespace sppo_test;

namespace {

struct Expected {
  double p, m, v, tol_p, tol_m, tol_v;
};

template <typename T>
Expected adamw_ref(double p, double gs, double m, double v, const sppo::AdamwParams& h) {
  const double e = std::numeric_limits<T>::epsilon(), b2 = double(T(h.beta2));
  const double omb1 = double(T(1 - h.beta1)), omb2 = double(T(1 - h.beta2));
  const double t = double(h.step);
  const double m1 = m + omb1 * (gs - m), v1 = b2 * v + omb2 * gs * gs;
  const double step = h.lr / (1 - std::pow(h.beta1, t)), bc2 = std::sqrt(1 - std::pow(h.beta2, t));
  const double den = std::sqrt(v1) / bc2 + h.eps, u = step * m1 / den, pd = p * (1 - h.lr * h.weight_decay);
  const double dm = 4 * e * (std::fabs(m) + std::fabs(gs));  // m1's rounding, cancellation included
  const double du = step * dm / den + 8 * e * std::fabs(u);
  return {pd - u, m1, v1, 2 * (2 * e * (std::fabs(pd) + std::fabs(u)) + du), 2 * dm, 2 * 4 * e * v1};
}

template <typename T>
void check_steps(uint64_t salt) {
  Rng rng(salt);
  for (int64_t n : {1, 9, 40007}) {
    auto p = randn<T>(rng, n);
    std::vector<T> g(n), m(n, T(0)), v(n, T(0));
    constexpr bool kBf16 = std::is_same_v<T, float>;  // the bf16 weights come from an fp32 master
    std::vector<uint16_t> w16(kBf16 ? n : 0);
    sppo::AdamwParams h;
    h.beta1 = rng.uniform(0.8, 0.95);
    h.beta2 = rng.uniform(0.99, 0.9999);
    h.weight_decay = 0.01;
    for (int step = 1; step <= 6; ++step) {
      double ss = 0;
      for (auto& x : g) {
        x = static_cast<T>(rng.normal(0, 0.3));
        ss += double(x) * x;
      }
      h.lr = rng.uniform(1e-3, 1e-2);
      h.step = step;
      const double max_norm = step == 3 ? 0.5 : 0.0;
      const double coef = max_norm > 0 ? std::min(1.0, max_norm / (std::sqrt(ss) + 1e-6)) : 1.0;
      std::vector<Expected> want(n);
      for (int64_t j = 0; j < n; ++j) want[j] = adamw_ref<T>(p[j], double(T(g[j] * T(coef))), m[j], v[j], h);
      const std::vector<T> p0 = p, m0 = m, v0 = v;
      std::fill(w16.begin(), w16.end(), uint16_t(0x7fc1));  // poison: a NaN no finite master rounds to
      sppo::cpu::adamw_step(p.data(), g.data(), m.data(), v.data(), n, h, &ss, max_norm, kBf16 ? w16.data() : nullptr);
      if constexpr (kBf16) {
        std::vector<T> p1 = p0, m1 = m0, v1 = v0;  // the same step without w16: the same bits
        sppo::cpu::adamw_step(p1.data(), g.data(), m1.data(), v1.data(), n, h, &ss, max_norm);
        CHECK(p1 == p && m1 == m && v1 == v);
        int64_t unrounded = 0;
        for (int64_t j = 0; j < n; ++j) unrounded += w16[j] != sppo::f32_to_bf16(p[j]);
        CHECK(unrounded == 0);
      }
      int bad = 0;
      for (int64_t j = 0; j < n; ++j) {
        const Expected& w = want[j];
        if (std::fabs(p[j] - w.p) <= w.tol_p && std::fabs(m[j] - w.m) <= w.tol_m && std::fabs(v[j] - w.v) <= w.tol_v)
          continue;
        if (++bad <= 3)
          std::printf("  step %d [%lld]: p %.10g m %.10g v %.10g, expected %.10g %.10g %.10g\n", step, (long long)j,
                      double(p[j]), double(m[j]), double(v[j]), w.p, w.m, w.v);
      }
      CHECK(bad == 0);
    }
  }
}

}  // namespace

TEST(adamw_matches_float64_steps_in_float) { check_steps<float>(32); }
TEST(adamw_matches_float64_steps_in_double) { check_steps<double>(36); }

TEST(adamw_skips_a_non_finite_norm) {
  std::vector<float> p = {1, 2}, g = {0.5f, -1}, m = {0.1f, 0.2f}, v = {0.3f, 0.4f};
  const auto p0 = p, m0 = m, v0 = v;
  sppo::AdamwParams h;
  h.lr = 0.1;
  std::vector<uint16_t> w16 = {0x7fc1, 0x3f80};
  const auto w0 = w16;
  for (double ss : {std::numeric_limits<double>::infinity(), std::nan("")}) {
    sppo::cpu::adamw_step(p.data(), g.data(), m.data(), v.data(), 2, h, &ss, 1.0, w16.data());
    CHECK(p == p0 && m == m0 && v == v0);
    CHECK(w16 == w0);
  }
}

TEST(sizes_are_checked_naming_the_argument) {
  auto be = cpu_backend();
  std::vector<float> p(5, 1.f), g(5, 0.1f), m(5, 0.f), v(5, 0.f);
  std::vector<double> ss = {0.05};
  sppo::AdamwParams h;
  h.lr = 0.1;
  std::vector<uint16_t> w16(5, 0);
  const sppo::Tensor none, w = sppo::Tensor(w16.data(), sppo::DType::BF16, 5);
  CHECK_THROWS_WITH(be->adamw_step(view(p, 1), view(g), view(m), view(v), 5, h, view(ss), 1.0, none),
                    "adamw_step: p has 4 elements, needs 5");
  CHECK_THROWS_WITH(be->adamw_step(view(p), view(g, 1), view(m), view(v), 5, h, view(ss), 1.0, none), "adamw_step: g");
  CHECK_THROWS_WITH(be->adamw_step(view(p), view(g), view(m, 1), view(v), 5, h, view(ss), 1.0, none), "adamw_step: m");
  CHECK_THROWS_WITH(be->adamw_step(view(p), view(g), view(m), view(v, 1), 5, h, view(ss), 1.0, none), "adamw_step: v");
  CHECK_THROWS_WITH(be->adamw_step(view(p), view(g), view(m), view(v), 5, h, view(ss, 1), 1.0, none),
                    "adamw_step: sum_squares has 0 elements, needs 1");
  CHECK_THROWS_WITH(be->adamw_step(view(p), view(g), view(m), view(v), 5, h, view(ss), 1.0, w.slice(0, 4)),
                    "adamw_step: weights16 has 4 elements, needs 5");
  CHECK(p[0] == 1.f && m[0] == 0.f && w16[0] == 0);  // nothing was stepped
  // Through the backend, weights16 reaches the kernel: the rounded master.
  be->adamw_step(view(p), view(g), view(m), view(v), 5, h, view(ss), 1.0, w);
  for (int j = 0; j < 5; ++j) CHECK(p[j] != 1.f && w16[j] == sppo::f32_to_bf16(p[j]));
}

// bf16 gradients beside the F32 master and state: the fp32 step over the widened gradients, bit for
// bit, through the kernel and the backend.
TEST(bf16_gradients_step_as_their_widened_fp32_values) {
  sppo_test::Rng rng(37);
  auto be = sppo_test::cpu_backend();
  const int64_t n = 30011;
  std::vector<float> p = sppo_test::randn<float>(rng, n), m = sppo_test::randn<float>(rng, n, 0.01), v(n), gw(n);
  for (auto& x : v) x = static_cast<float>(rng.uniform(0, 0.01));
  std::vector<uint16_t> g(n);
  for (int64_t i = 0; i < n; ++i) {
    g[i] = sppo::f32_to_bf16(static_cast<float>(rng.normal(0, 0.1)));
    gw[i] = sppo::bf16_to_f32(g[i]);
  }
  std::vector<double> ss = {0.7};
  sppo::AdamwParams h;
  h.lr = 1e-3;
  h.weight_decay = 0.01;
  h.step = 3;
  std::vector<float> p2 = p, m2 = m, v2 = v, p3 = p, m3 = m, v3 = v;
  sppo::cpu::adamw_step(p.data(), gw.data(), m.data(), v.data(), n, h, ss.data(), 0.5);
  sppo::cpu::adamw_step(p2.data(), g.data(), m2.data(), v2.data(), n, h, ss.data(), 0.5);
  CHECK(p2 == p && m2 == m && v2 == v);
  be->adamw_step(sppo_test::view(p3), sppo::Tensor(g.data(), sppo::DType::BF16, n), sppo_test::view(m3),
                 sppo_test::view(v3), n, h, sppo_test::view(ss), 0.5, sppo::Tensor());
  CHECK(p3 == p && m3 == m && v3 == v);
  CHECK_THROWS_WITH(be->adamw_step(sppo_test::view(p3), sppo::Tensor(g.data(), sppo::DType::BF16, n - 1), sppo_test::view(m3),
                                   sppo_test::view(v3), n, h, sppo_test::view(ss), 0.5, sppo::Tensor()),
                    "adamw_step: g has 30010 elements, needs 30011");
}

TEST_MAIN()
