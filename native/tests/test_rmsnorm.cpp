// RMSNorm (kernels/rmsnorm.h) against a float64 reference written here from the contract's
// formula: y and rstd; dx and dw against central finite differences of the reference; dx
// overwritten (from NaN) or accumulated; dw added to what it holds, independently of the thread
// count; sizes the backend refuses. In the bf16 mode, through the CPU backend (its emulation), dw
// may be BF16 (the bf16 gradient arena): within one bf16 rounding of the float64 sum, and exactly
// the F32-dw call's result rounded once.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "kernels/rmsnorm.h"
#include "op_testing.h"

using namespace sppo_test;

namespace {

struct Norm {
  int64_t n, H;
  double eps;
};

// y = x * rsqrt(mean(x^2) + eps) * w, rows of H.
std::vector<double> ref_forward(const Norm& c, const std::vector<double>& x, const std::vector<double>& w,
                                std::vector<double>* rstd = nullptr) {
  std::vector<double> y(c.n * c.H);
  if (rstd) rstd->resize(c.n);
  for (int64_t r = 0; r < c.n; ++r) {
    double ss = 0;
    for (int64_t j = 0; j < c.H; ++j) ss += x[r * c.H + j] * x[r * c.H + j];
    const double rs = 1 / std::sqrt(ss / c.H + c.eps);
    if (rstd) (*rstd)[r] = rs;
    for (int64_t j = 0; j < c.H; ++j) y[r * c.H + j] = x[r * c.H + j] * rs * w[j];
  }
  return y;
}

// Rows of N(0, 1), one row scaled down so that eps matters, weights around 1.
template <typename T>
void make_inputs(Rng& rng, const Norm& c, std::vector<T>& x, std::vector<T>& w) {
  x = randn<T>(rng, c.n * c.H);
  if (c.n > 1)
    for (int64_t j = 0; j < c.H; ++j) x[j] = static_cast<T>(x[j] * 1e-3);
  w.resize(c.H);
  for (auto& v : w) v = static_cast<T>(rng.uniform(0.5, 1.5));
}

const int64_t kShapes[][2] = {{1, 1}, {3, 1}, {1, 7}, {5, 13}, {17, 64}, {4, 130}, {2, 1000}};
const double kEps[] = {1e-6, 1e-5, 0.5};

template <typename T>
void check_forward(uint64_t salt) {
  Rng rng(salt);
  for (auto& s : kShapes)
    for (double eps : kEps) {
      const Norm c{s[0], s[1], eps};
      std::vector<T> x, w;
      make_inputs(rng, c, x, w);
      auto y = poisoned<T>(c.n * c.H), rstd = poisoned<T>(c.n);
      sppo::cpu::rmsnorm_forward(x.data(), w.data(), c.n, c.H, c.eps, y.data(), rstd.data());
      std::vector<double> want_rstd;
      const auto want = ref_forward(c, to_f64(x), to_f64(w), &want_rstd);
      // A sum of H squares, a square root and two products: (H + 8) rounding steps at most.
      const double tol = ulps<T>(c.H + 8);
      CHECK_NEAR_ALL("y", y, want, tol);
      CHECK_NEAR_ALL("rstd", rstd, want_rstd, tol);
    }
}

template <typename T>
void check_backward(uint64_t salt) {
  Rng rng(salt);
  for (auto& s : kShapes)
    for (double eps : kEps)
      for (bool accumulate : {false, true}) {
        const Norm c{s[0], s[1], eps};
        std::vector<T> x, w;
        make_inputs(rng, c, x, w);
        const auto dy = randn<T>(rng, c.n * c.H);
        std::vector<T> y(c.n * c.H), rstd(c.n);
        sppo::cpu::rmsnorm_forward(x.data(), w.data(), c.n, c.H, c.eps, y.data(), rstd.data());
        const auto dx0 = randn<T>(rng, c.n * c.H), dw0 = randn<T>(rng, c.H);
        auto dx = accumulate ? dx0 : poisoned<T>(c.n * c.H);
        auto dw = dw0;
        sppo::cpu::rmsnorm_backward(x.data(), w.data(), rstd.data(), dy.data(), c.n, c.H, dx.data(), dw.data(),
                                    accumulate);
        // f(x, w) = <dy, y(x, w)> in float64; its gradient is what backward computes.
        const auto xd = to_f64(x), wd = to_f64(w), dyd = to_f64(dy);
        std::vector<double> want_dx;
        for (int64_t r = 0; r < c.n; ++r) {  // row by row, with a step scaled to the row
          const std::vector<double> xr(xd.begin() + r * c.H, xd.begin() + (r + 1) * c.H),
              dyr(dyd.begin() + r * c.H, dyd.begin() + (r + 1) * c.H);
          auto fr = [&](const std::vector<double>& xv) { return dot(dyr, ref_forward({1, c.H, c.eps}, xv, wd)); };
          const auto g = numeric_grad(fr, xr, 1e-5 * (rms(xr) + 1e-30));
          want_dx.insert(want_dx.end(), g.begin(), g.end());
        }
        auto f_w = [&](const std::vector<double>& wv) { return dot(dyd, ref_forward(c, xd, wv)); };
        auto want_dw = numeric_grad(f_w, wd);
        if (accumulate)
          for (size_t i = 0; i < want_dx.size(); ++i) want_dx[i] += double(dx0[i]);
        for (size_t j = 0; j < want_dw.size(); ++j) want_dw[j] += double(dw0[j]);
        // fp rounding of the kernel (sums of H or n terms) plus the finite differences' own error.
        const double tol = ulps<T>(16 * std::sqrt(double(c.H * c.n)) + 64) + 1e-7;
        // Results can cancel to far below the terms they are made of: dx's two terms when one
        // element dominates its row (H = 1: exactly, up to eps), and either gradient against what
        // it accumulates into. So the error is also allowed relative to the size of the terms:
        // |dx0| + |rstd dy w| for dx, |dw0| + sum over rows of |dy x rstd| for dw.
        std::vector<double> rs, mag_x(c.n * c.H), mag_w(c.H);
        ref_forward(c, xd, wd, &rs);
        for (int64_t j = 0; j < c.H; ++j) mag_w[j] = std::fabs(double(dw0[j]));
        for (int64_t i = 0; i < c.n * c.H; ++i) {
          const double r = rs[i / c.H];
          mag_x[i] = (accumulate ? std::fabs(double(dx0[i])) : 0.0) + std::fabs(r * dyd[i] * wd[i % c.H]);
          mag_w[i % c.H] += std::fabs(dyd[i] * xd[i] * r);
        }
        CHECK_NEAR_ALL_ABS("dx", dx, want_dx, tol, tol * rms(mag_x));
        CHECK_NEAR_ALL_ABS("dw", dw, want_dw, tol, tol * rms(mag_w));
      }
}

}  // namespace

TEST(forward_matches_float64_in_float) { check_forward<float>(111); }
TEST(forward_matches_float64_in_double) { check_forward<double>(112); }
TEST(backward_matches_finite_differences_in_float) { check_backward<float>(113); }
TEST(backward_matches_finite_differences_in_double) { check_backward<double>(114); }

TEST(backward_does_not_depend_on_the_thread_count) {
#ifdef _OPENMP
  Rng rng(115);
  const Norm c{300, 1000, 1e-5};  // big enough to run in parallel
  std::vector<float> x, w;
  make_inputs(rng, c, x, w);
  const auto dy = randn<float>(rng, c.n * c.H);
  std::vector<float> y(c.n * c.H), rstd(c.n);
  sppo::cpu::rmsnorm_forward(x.data(), w.data(), c.n, c.H, c.eps, y.data(), rstd.data());
  std::vector<float> dx1(c.n * c.H), dw1(c.H, 0.f), dx2(c.n * c.H), dw2(c.H, 0.f);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  sppo::cpu::rmsnorm_backward(x.data(), w.data(), rstd.data(), dy.data(), c.n, c.H, dx1.data(), dw1.data(), false);
  omp_set_num_threads(std::max(2, saved));
  sppo::cpu::rmsnorm_backward(x.data(), w.data(), rstd.data(), dy.data(), c.n, c.H, dx2.data(), dw2.data(), false);
  omp_set_num_threads(saved);
  CHECK(dx1 == dx2);
  CHECK(dw1 == dw2);  // the sum over rows runs in row order
#else
  std::printf("  skipped: built without OpenMP, so there is one thread only\n");
#endif
}

// BF16 x, w, dy and dx with an F32 rstd, into a BF16 dw holding earlier gradients (bf16 values).
TEST(backward_into_a_bf16_dw_rounds_the_fp32_sum_once) {
  Rng rng(116);
  auto be = cpu_backend();
  auto bf = [&](int64_t n, double mean, double sd) {
    std::vector<uint16_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = sppo::f32_to_bf16(static_cast<float>(rng.normal(mean, sd)));
    return v;
  };
  auto t16 = [](std::vector<uint16_t>& v) { return sppo::Tensor(v.data(), sppo::DType::BF16, static_cast<int64_t>(v.size())); };
  for (auto s : {std::pair<int64_t, int64_t>{1, 1}, {5, 13}, {70, 130}, {300, 64}}) {
    const int64_t n = s.first, H = s.second;
    std::vector<uint16_t> x = bf(n * H, 0, 1), w = bf(H, 1, 0.2), dy = bf(n * H, 0, 1), y(n * H), dw0 = bf(H, 0, 1);
    std::vector<float> rstd(static_cast<size_t>(n));
    be->rmsnorm_forward(t16(x), t16(w), n, H, 1e-5, t16(y), view(rstd));
    std::vector<uint16_t> dx16(n * H, 0x7fc0), dxf(n * H, 0x7fc0), dw16 = dw0;
    std::vector<float> dwf(static_cast<size_t>(H));
    for (int64_t j = 0; j < H; ++j) dwf[j] = sppo::bf16_to_f32(dw0[j]);
    be->rmsnorm_backward(t16(x), t16(w), view(rstd), t16(dy), n, H, t16(dx16), t16(dw16), false);
    be->rmsnorm_backward(t16(x), t16(w), view(rstd), t16(dy), n, H, t16(dxf), view(dwf), false);
    int64_t not_once = 0;
    for (int64_t j = 0; j < H; ++j) not_once += dw16[j] != sppo::f32_to_bf16(dwf[j]);
    CHECK(not_once == 0);  // one rounding of the fp32 sum, no rounding per row
    CHECK(dx16 == dxf);    // dx does not depend on dw's type
    // float64: dw0 + sum_r dy x rstd (rstd as given); bf16 half-ulp plus the fp32 sum's error.
    std::vector<double> want(static_cast<size_t>(H)), mag(static_cast<size_t>(H));
    for (int64_t j = 0; j < H; ++j) want[j] = mag[j] = 0;
    for (int64_t j = 0; j < H; ++j) {
      want[j] = sppo::bf16_to_f32(dw0[j]);
      mag[j] = std::fabs(want[j]);
    }
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < H; ++j) {
        const double t = double(sppo::bf16_to_f32(dy[r * H + j])) * sppo::bf16_to_f32(x[r * H + j]) * rstd[r];
        want[j] += t;
        mag[j] += std::fabs(t);
      }
    int64_t off = 0;
    for (int64_t j = 0; j < H; ++j) {
      const double got = sppo::bf16_to_f32(dw16[j]);
      const double tol = 0x1p-8 * std::fabs(want[j]) + (1 + 0x1p-8) * ulps<float>(2.0 * n + 4) * mag[j];
      if (!(std::fabs(got - want[j]) <= tol) && ++off <= 3)
        std::printf("  dw[%lld] = %.9g, expected %.9g (tolerance %.3g)\n", (long long)j, got, want[j], tol);
    }
    CHECK(off == 0);
  }
  // Only beside BF16 activations: an fp32 op's weight gradient stays F32.
  std::vector<float> xf(6, 1.f), wf(3, 1.f), rf(2, 1.f), dyf(6, 1.f), dxf(6);
  std::vector<uint16_t> dwb(3, 0);
  CHECK_THROWS_WITH(be->rmsnorm_backward(view(xf), view(wf), view(rf), view(dyf), 2, 3, view(dxf), t16(dwb), false),
                    "rmsnorm_backward: dw must be F32 (got BF16)");
}

TEST(sizes_are_checked_naming_the_argument) {
  auto be = cpu_backend();
  const int64_t n = 3, H = 5;
  std::vector<float> x(n * H, 1.f), w(H, 1.f), y(n * H), rstd(n), dy(n * H, 1.f), dx(n * H), dw(H, 0.f);
  CHECK_THROWS_WITH(be->rmsnorm_forward(view(x, 1), view(w), n, H, 1e-5, view(y), view(rstd)),
                    "rmsnorm_forward: x has 14 elements, needs 15");
  CHECK_THROWS_WITH(be->rmsnorm_forward(view(x), view(w, 1), n, H, 1e-5, view(y), view(rstd)), "rmsnorm_forward: w");
  CHECK_THROWS_WITH(be->rmsnorm_forward(view(x), view(w), n, H, 1e-5, view(y, 2), view(rstd)), "rmsnorm_forward: y");
  CHECK_THROWS_WITH(be->rmsnorm_forward(view(x), view(w), n, H, 1e-5, view(y), view(rstd, 1)),
                    "rmsnorm_forward: rstd");
  be->rmsnorm_forward(view(x), view(w), n, H, 1e-5, view(y), view(rstd));
  CHECK_THROWS_WITH(be->rmsnorm_backward(view(x), view(w), view(rstd), view(dy, 1), n, H, view(dx), view(dw), false),
                    "rmsnorm_backward: dy");
  CHECK_THROWS_WITH(be->rmsnorm_backward(view(x), view(w), view(rstd), view(dy), n, H, view(dx, 1), view(dw), false),
                    "rmsnorm_backward: dx");
  CHECK_THROWS_WITH(be->rmsnorm_backward(view(x), view(w), view(rstd), view(dy), n, H, view(dx), view(dw, 1), false),
                    "rmsnorm_backward: dw");
  std::vector<double> wd(H, 1.0);
  CHECK_THROWS_WITH(be->rmsnorm_forward(view(x), view(wd), n, H, 1e-5, view(y), view(rstd)),
                    "rmsnorm_forward: w must be F32");
}

TEST_MAIN()
