// RMSprop over a flat range (kernels/rmsprop.h) against a float64 closed form over several steps,
// with L2 weight decay and clipping by a given sum of squares; the bf16 weights it writes (w16) are
// the RNE rounding of the updated master, bit for bit (and writing them changes nothing else); a
// non-finite norm changes nothing, w16 included. The shared rounding (optim_math::bf16_bits)
// equals core/dtype.h's f32_to_bf16 on edge values and random bits.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "kernels/rmsprop.h"
#include "op_testing.h"

namespace {
constexpr uint16_t kPoison = 0x7fc1;  // a NaN no rounding of a finite master produces
}  // namespace

TEST(the_shared_bf16_rounding_is_f32_to_bf16) {
  sppo_test::Rng rng(33);
  std::vector<uint32_t> bits = {0x00000000u, 0x80000000u, 0x00000001u, 0x00008000u, 0x00018000u,  // ties
                                0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x3f808001u, 0x7f7fffffu,  // to inf
                                0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffbfffffu};  // NaNs
  for (int i = 0; i < 200000; ++i) bits.push_back(static_cast<uint32_t>(rng.integer(0, (int64_t{1} << 32) - 1)));
  int bad = 0;
  for (uint32_t u : bits) {
    float f;
    std::memcpy(&f, &u, 4);
    if (sppo::optim_math::bf16_bits(f) != sppo::f32_to_bf16(f) && ++bad <= 3) std::printf("  bits %08x differ\n", u);
  }
  CHECK(bad == 0);
}

// Each step against a float64 step from the kernel's own state before it (so fp32 rounding does
// not compound across steps), over several steps with weight decay and clipping.
TEST(rmsprop_matches_a_float64_step_over_steps) {
  sppo_test::Rng rng(31);
  for (double wd : {0.0, 0.05}) {
    const int64_t n = 70001;  // crosses the kernel's chunks
    std::vector<float> p(n), g(n), v(n, 0.f);
    std::vector<uint16_t> w16(n);
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
      std::fill(w16.begin(), w16.end(), kPoison);
      sppo::cpu::rmsprop_step(p.data(), g.data(), v.data(), n, h, &ss, max_norm, w16.data());
      // Without w16 the same step gives the same master and state, bit for bit.
      std::vector<float> p1 = p0, v1 = v0;
      sppo::cpu::rmsprop_step(p1.data(), g.data(), v1.data(), n, h, &ss, max_norm);
      CHECK(p1 == p && v1 == v);
      int64_t unrounded = 0;
      for (int64_t j = 0; j < n; ++j) unrounded += w16[j] != sppo::f32_to_bf16(p[j]);
      CHECK(unrounded == 0);
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
  std::vector<uint16_t> w16 = {kPoison, 0x1234, 0x4321};
  const auto p0 = p, v0 = v;
  const auto w0 = w16;
  sppo::RmspropParams h;
  h.lr = 0.1;
  for (double ss : {std::numeric_limits<double>::infinity(), std::nan("")}) {
    sppo::cpu::rmsprop_step(p.data(), g.data(), v.data(), 3, h, &ss, 1.0, w16.data());
    CHECK(p == p0);
    CHECK(v == v0);
    CHECK(w16 == w0);
  }
}

// Through the CPU backend's op table: weights16 reaches the kernel (and is checked by name).
TEST(the_backend_writes_weights16_and_checks_it) {
  sppo_test::Rng rng(34);
  auto be = sppo_test::cpu_backend();
  const int64_t n = 1003;
  std::vector<float> p = sppo_test::randn<float>(rng, n), g = sppo_test::randn<float>(rng, n, 0.1), v(n, 0.f);
  std::vector<double> ss = {0.5};
  std::vector<uint16_t> w16(n, kPoison);
  sppo::RmspropParams h;
  h.lr = 1e-3;
  const std::vector<float> p0 = p;
  be->rmsprop_step(sppo_test::view(p), sppo_test::view(g), sppo_test::view(v), n, h, sppo_test::view(ss), 1.0,
                   sppo::Tensor(w16.data(), sppo::DType::BF16, n));
  int64_t bad = 0, moved = 0;
  for (int64_t j = 0; j < n; ++j) {
    bad += w16[j] != sppo::f32_to_bf16(p[j]);
    moved += p[j] != p0[j];
  }
  CHECK(bad == 0);
  CHECK(moved == n);
  CHECK_THROWS_WITH(be->rmsprop_step(sppo_test::view(p), sppo_test::view(g), sppo_test::view(v), n, h,
                                     sppo_test::view(ss), 1.0, sppo::Tensor(w16.data(), sppo::DType::BF16, n - 1)),
                    "rmsprop_step: weights16 has 1002 elements, needs 1003");
}

// bf16 gradients beside the F32 master and state (the bf16 gradient arena): the step is the fp32
// step over the widened gradients, bit for bit, through the kernel and the backend; a BF16 g needs
// an F32 p.
TEST(bf16_gradients_step_as_their_widened_fp32_values) {
  sppo_test::Rng rng(35);
  auto be = sppo_test::cpu_backend();
  const int64_t n = 40003;
  std::vector<float> p = sppo_test::randn<float>(rng, n), v(n), gw(n);
  for (auto& x : v) x = static_cast<float>(rng.uniform(0, 0.01));
  std::vector<uint16_t> g(n), w16(n, kPoison), w16b(n, kPoison);
  for (int64_t i = 0; i < n; ++i) {
    g[i] = sppo::f32_to_bf16(static_cast<float>(rng.normal(0, 0.1)));
    gw[i] = sppo::bf16_to_f32(g[i]);
  }
  std::vector<double> ss = {2.0};
  sppo::RmspropParams h;
  h.lr = 1e-3;
  h.weight_decay = 0.01;
  std::vector<float> p2 = p, v2 = v, p3 = p, v3 = v;
  sppo::cpu::rmsprop_step(p.data(), gw.data(), v.data(), n, h, ss.data(), 1.0, w16.data());
  sppo::cpu::rmsprop_step(p2.data(), g.data(), v2.data(), n, h, ss.data(), 1.0, w16b.data());
  CHECK(p2 == p && v2 == v && w16b == w16);
  std::vector<uint16_t> w16c(n, kPoison);
  be->rmsprop_step(sppo_test::view(p3), sppo::Tensor(g.data(), sppo::DType::BF16, n), sppo_test::view(v3), n, h,
                   sppo_test::view(ss), 1.0, sppo::Tensor(w16c.data(), sppo::DType::BF16, n));
  CHECK(p3 == p && v3 == v && w16c == w16);
  std::vector<double> pd(n, 0.0), vd(n, 0.0);
  CHECK_THROWS_WITH(be->rmsprop_step(sppo::Tensor(pd.data(), sppo::DType::F64, n), sppo::Tensor(g.data(), sppo::DType::BF16, n),
                                     sppo::Tensor(vd.data(), sppo::DType::F64, n), n, h, sppo_test::view(ss), 1.0, sppo::Tensor()),
                    "rmsprop_step: g must be F64 (got BF16)");
}

TEST_MAIN()
