// Rotary embeddings (kernels/rope.h) against a float64 reference written here: the tables (one
// float32 angle product, cos/sin within one float32 rounding of the exact value, stored exactly
// as float32 values), the rotation on (first half, second half), and the inverse as the
// transpose (the backward pass) against finite differences of the reference rotation. Outputs
// start as NaN; the backend refuses odd head_dim and short tensors by name.
#include <cmath>
#include <vector>

#include "kernels/rope.h"
#include "op_testing.h"

using namespace sppo_test;

namespace {

// Transformers' default inverse frequencies, computed in float32 as the model does.
std::vector<float> inv_freqs(int64_t half, double theta) {
  std::vector<float> f(half);
  for (int64_t i = 0; i < half; ++i)
    f[i] = static_cast<float>(1.0 / std::pow(theta, 2.0 * double(i) / double(2 * half)));
  return f;
}

struct Rot {
  int64_t n, heads, hd;
};

// y = rotate(x) per row r with angles whose cos/sin are c, s [n, hd/2].
std::vector<double> ref_rotate(const Rot& s, const std::vector<double>& x, const std::vector<double>& c,
                               const std::vector<double>& sn) {
  const int64_t half = s.hd / 2;
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < s.n; ++r)
    for (int64_t h = 0; h < s.heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const int64_t o = (r * s.heads + h) * s.hd;
        const double a = x[o + i], b = x[o + i + half], cc = c[r * half + i], ss = sn[r * half + i];
        y[o + i] = a * cc - b * ss;
        y[o + i + half] = b * cc + a * ss;
      }
  return y;
}

// The spacing of float32 values at |v|.
double float_ulp(double v) {
  const float a = std::fabs(static_cast<float>(v));
  return double(std::nextafter(a, INFINITY)) - double(a);
}

template <typename T>
void check_tables(uint64_t salt) {
  Rng rng(salt);
  for (int64_t half : {1, 3, 4, 32, 64}) {
    const auto f = inv_freqs(half, rng.uniform(1e4, 1e6));
    std::vector<int32_t> pos = {0, 1, 131071, static_cast<int32_t>(rng.integer(0, 1 << 20))};
    for (int k = 0; k < 13; ++k) pos.push_back(static_cast<int32_t>(rng.integer(0, 4096)));
    const int64_t n = static_cast<int64_t>(pos.size());
    auto c = poisoned<T>(n * half), s = poisoned<T>(n * half);
    sppo::cpu::rope_tables(f.data(), half, pos.data(), n, c.data(), s.data());
    int bad = 0;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < half; ++i) {
        const float angle = f[i] * static_cast<float>(pos[r]);  // the contract's one float32 product
        const long double a = angle;
        const double gc = double(c[r * half + i]), gs = double(s[r * half + i]);
        // Within one float32 spacing of the exact cos/sin, and a float32 value even when T is double.
        const bool ok = std::fabs(gc - double(std::cos(a))) <= float_ulp(gc) &&
                        std::fabs(gs - double(std::sin(a))) <= float_ulp(gs) && gc == double(float(gc)) &&
                        gs == double(float(gs));
        if (!ok && ++bad <= 3)
          std::printf("  pos %d freq %d: cos %.9g sin %.9g, expected %.9Lg %.9Lg\n", pos[r], int(i), gc, gs,
                      std::cos(a), std::sin(a));
      }
    CHECK(bad == 0);
  }
}

template <typename T>
void random_tables(Rng& rng, int64_t n, int64_t half, std::vector<T>& c, std::vector<T>& s) {
  c.resize(n * half);
  s.resize(n * half);
  for (int64_t i = 0; i < n * half; ++i) {
    const double a = rng.uniform(-1e3, 1e3);
    c[i] = static_cast<T>(std::cos(a));
    s[i] = static_cast<T>(std::sin(a));
  }
}

const Rot kShapes[] = {{1, 1, 2}, {1, 3, 6}, {5, 2, 10}, {33, 4, 64}, {3, 5, 128}};

template <typename T>
void check_apply(uint64_t salt) {
  Rng rng(salt);
  for (const Rot& sh : kShapes) {
    std::vector<T> c, s;
    random_tables(rng, sh.n, sh.hd / 2, c, s);
    const auto x0 = randn<T>(rng, sh.n * sh.heads * sh.hd);
    auto x = x0;
    sppo::cpu::rope_apply(x.data(), sh.n, sh.heads, sh.hd, c.data(), s.data(), false);
    CHECK_NEAR_ALL("rotated", x, ref_rotate(sh, to_f64(x0), to_f64(c), to_f64(s)), ulps<T>(4));
    // The inverse is the transpose: the gradient of <dy, rotate(x)> by x, here by finite differences.
    const auto dy = randn<T>(rng, sh.n * sh.heads * sh.hd);
    auto dx = dy;
    sppo::cpu::rope_apply(dx.data(), sh.n, sh.heads, sh.hd, c.data(), s.data(), true);
    const auto cd = to_f64(c), sd = to_f64(s), dyd = to_f64(dy);
    const auto fd = numeric_grad([&](const std::vector<double>& v) { return dot(dyd, ref_rotate(sh, v, cd, sd)); },
                                 to_f64(x0));
    CHECK_NEAR_ALL("inverse", dx, fd, ulps<T>(4) + 1e-8);
  }
}

}  // namespace

TEST(tables_are_float32_angles_and_values_in_float) { check_tables<float>(121); }
TEST(tables_are_float32_angles_and_values_in_double) { check_tables<double>(122); }
TEST(apply_and_its_transpose_match_the_reference_in_float) { check_apply<float>(123); }
TEST(apply_and_its_transpose_match_the_reference_in_double) { check_apply<double>(124); }

TEST(apply_then_inverse_is_the_identity) {
  Rng rng(125);
  const Rot sh{7, 3, 18};
  std::vector<double> c, s;
  random_tables(rng, sh.n, sh.hd / 2, c, s);
  const auto x0 = randn<double>(rng, sh.n * sh.heads * sh.hd);
  auto x = x0;
  sppo::cpu::rope_apply(x.data(), sh.n, sh.heads, sh.hd, c.data(), s.data(), false);
  sppo::cpu::rope_apply(x.data(), sh.n, sh.heads, sh.hd, c.data(), s.data(), true);
  CHECK_NEAR_ALL("round trip", x, x0, 1e-14);
}

TEST(bad_shapes_and_sizes_are_refused_naming_the_argument) {
  auto be = cpu_backend();
  const int64_t n = 2, heads = 3, hd = 4;
  std::vector<float> x(n * heads * hd, 1.f), c(n * hd / 2, 1.f), s(n * hd / 2, 0.f), f(hd / 2, 1.f);
  std::vector<int32_t> pos = {0, 5};
  CHECK_THROWS_WITH(be->rope_apply(view(x), n, heads, 5, view(c), view(s), false),
                    "rope_apply: head_dim must be even (got 5)");
  CHECK_THROWS_WITH(be->rope_apply(view(x, 1), n, heads, hd, view(c), view(s), false),
                    "rope_apply: x has 23 elements, needs 24");
  CHECK_THROWS_WITH(be->rope_apply(view(x), n, heads, hd, view(c, 1), view(s), false), "rope_apply: cos");
  CHECK_THROWS_WITH(be->rope_apply(view(x), n, heads, hd, view(c), view(s, 1), true), "rope_apply: sin");
  CHECK_THROWS_WITH(be->rope_tables(view(f, 1), hd / 2, view(pos), n, view(c), view(s)), "rope_tables: inv_freq");
  CHECK_THROWS_WITH(be->rope_tables(view(f), hd / 2, view(pos, 1), n, view(c), view(s)), "rope_tables: positions");
  CHECK_THROWS_WITH(be->rope_tables(view(f), hd / 2, view(pos), n, view(c, 1), view(s)), "rope_tables: cos");
  std::vector<double> fd(hd / 2, 1.0);
  CHECK_THROWS_WITH(be->rope_tables(view(fd), hd / 2, view(pos), n, view(c), view(s)),
                    "rope_tables: inv_freq must be F32");
  be->rope_tables(view(f), hd / 2, view(pos), n, view(c), view(s));
  CHECK(c[0] == 1.f && s[0] == 0.f);  // position 0
}

TEST_MAIN()
