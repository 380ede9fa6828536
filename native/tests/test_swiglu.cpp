// SwiGLU (kernels/swiglu.h) against a float64 reference written here: act = silu(gate) * up,
// including large |gate| where exp overflows or underflows; act written over gate (the alias the
// contract allows); the same result for an element wherever it sits (the decoder runs single
// rows); dgate and dup against central finite differences of the reference. Counts hit the
// 8-lane tails and the 4096-element chunks; outputs start as NaN.
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/swiglu.h"
#include "op_testing.h"

using namespace sppo_test;

namespace {

double ref_act(double g, double u) { return g / (1 + std::exp(-g)) * u; }

const int64_t kCounts[] = {1, 7, 8, 9, 31, 4095, 4096, 4097, 10001};

// Gates of scale 4 with some far out in both tails (exp(-g) over- and underflows in float).
template <typename T>
std::vector<T> gates(Rng& rng, int64_t n) {
  auto g = randn<T>(rng, n, 4.0);
  const double tails[] = {-120, -90, -30, -1.2784645, 0, 30, 90, 120};
  for (int64_t i = 0; i < n; i += 5) g[i] = static_cast<T>(tails[rng.integer(0, 7)] + rng.uniform(-0.5, 0.5));
  return g;
}

template <typename T>
void check_forward(uint64_t salt) {
  Rng rng(salt);
  for (int64_t n : kCounts) {
    const auto gate = gates<T>(rng, n), up = randn<T>(rng, n);
    auto act = poisoned<T>(n);
    sppo::cpu::swiglu_forward(gate.data(), up.data(), n, act.data());
    std::vector<double> want(n), scale(n);
    for (int64_t i = 0; i < n; ++i) want[i] = ref_act(gate[i], up[i]), scale[i] = double(gate[i]) * up[i];
    // Relative, and absolute on the scale of gate * up where silu underflows (gate << 0).
    CHECK_NEAR_ALL_ABS("act", act, want, ulps<T>(8), ulps<T>(8) * rms(scale));
    auto inplace = gate;  // act may alias gate
    sppo::cpu::swiglu_forward(inplace.data(), up.data(), n, inplace.data());
    CHECK(std::memcmp(inplace.data(), act.data(), n * sizeof(T)) == 0);
    // Any sub-range gives bitwise the values the whole array gave (alignment, tails, chunks).
    const int64_t o = rng.integer(0, n - 1), len = rng.integer(1, n - o);
    auto part = poisoned<T>(len);
    sppo::cpu::swiglu_forward(gate.data() + o, up.data() + o, len, part.data());
    CHECK(std::memcmp(part.data(), act.data() + o, len * sizeof(T)) == 0);
  }
}

template <typename T>
void check_backward(uint64_t salt) {
  Rng rng(salt);
  for (int64_t n : kCounts) {
    const auto gate = gates<T>(rng, n), up = randn<T>(rng, n), dact = randn<T>(rng, n);
    auto dgate = poisoned<T>(n), dup = poisoned<T>(n);
    sppo::cpu::swiglu_backward(gate.data(), up.data(), dact.data(), n, dgate.data(), dup.data());
    // d/dgate and d/dup of dact * act(gate, up), element by element (act_i reads only gate_i, up_i).
    std::vector<double> want_g(n), want_u(n), scale_g(n), scale_u(n);
    for (int64_t i = 0; i < n; ++i) {
      const double g = gate[i], u = up[i], d = dact[i];
      scale_g[i] = d * u;  // |d silu / d gate| <= 1.1: the size of dgate's terms
      scale_u[i] = d * g;
      want_g[i] = numeric_grad([&](const std::vector<double>& v) { return d * ref_act(v[0], u); }, {g})[0];
      want_u[i] = numeric_grad([&](const std::vector<double>& v) { return d * ref_act(g, v[0]); }, {u})[0];
    }
    const double tol = ulps<T>(16) + 1e-7;
    CHECK_NEAR_ALL_ABS("dgate", dgate, want_g, tol, tol * rms(scale_g));
    CHECK_NEAR_ALL_ABS("dup", dup, want_u, tol, tol * rms(scale_u));
    // The same values for a sub-range.
    const int64_t o = rng.integer(0, n - 1), len = rng.integer(1, n - o);
    auto pg = poisoned<T>(len), pu = poisoned<T>(len);
    sppo::cpu::swiglu_backward(gate.data() + o, up.data() + o, dact.data() + o, len, pg.data(), pu.data());
    CHECK(std::memcmp(pg.data(), dgate.data() + o, len * sizeof(T)) == 0);
    CHECK(std::memcmp(pu.data(), dup.data() + o, len * sizeof(T)) == 0);
  }
}

}  // namespace

TEST(forward_matches_float64_in_float) { check_forward<float>(131); }
TEST(forward_matches_float64_in_double) { check_forward<double>(132); }
TEST(backward_matches_finite_differences_in_float) { check_backward<float>(133); }
TEST(backward_matches_finite_differences_in_double) { check_backward<double>(134); }

TEST(sizes_are_checked_naming_the_argument) {
  auto be = cpu_backend();
  std::vector<float> g(9, 0.5f), u(9, 1.f), a(9), da(9, 1.f), dg(9), du(9);
  CHECK_THROWS_WITH(be->swiglu_forward(view(g, 1), view(u), 9, view(a)),
                    "swiglu_forward: gate has 8 elements, needs 9");
  CHECK_THROWS_WITH(be->swiglu_forward(view(g), view(u, 1), 9, view(a)), "swiglu_forward: up");
  CHECK_THROWS_WITH(be->swiglu_forward(view(g), view(u), 9, view(a, 1)), "swiglu_forward: act");
  CHECK_THROWS_WITH(be->swiglu_backward(view(g), view(u), view(da, 1), 9, view(dg), view(du)), "swiglu_backward: dact");
  CHECK_THROWS_WITH(be->swiglu_backward(view(g), view(u), view(da), 9, view(dg, 1), view(du)),
                    "swiglu_backward: dgate");
  CHECK_THROWS_WITH(be->swiglu_backward(view(g), view(u), view(da), 9, view(dg), view(du, 1)), "swiglu_backward: dup");
  std::vector<double> ud(9, 1.0);
  CHECK_THROWS_WITH(be->swiglu_forward(view(g), view(ud), 9, view(a)), "swiglu_forward: up must be F32");
}

TEST_MAIN()
