// LayerNorm forward (kernels/layernorm.h) through the CPU backend against a float64 reference
// written here from the definition, on fresh random rows (some with a large common offset, where
// a one-pass variance would cancel), in fp32 and fp64, outputs poisoned with NaN first; in place;
// a row's result alone equals its result in a batch bit for bit; bad shapes are refused by name.
#include <cmath>
#include <limits>
#include <vector>

#include "backend/backend.h"
#include "testing.h"

using namespace sppo;
using sppo_test::Rng;

namespace {

template <typename T>
constexpr DType dtype_of() {
  return sizeof(T) == 4 ? DType::F32 : DType::F64;
}
template <typename T>
Tensor view(std::vector<T>& v) {
  return Tensor(v.data(), dtype_of<T>(), static_cast<int64_t>(v.size()));
}

std::vector<double> reference(const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>& b,
                              int64_t n, int64_t H, double eps) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < n; ++r) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < H; ++j) mean += x[r * H + j];
    mean /= H;
    for (int64_t j = 0; j < H; ++j) var += (x[r * H + j] - mean) * (x[r * H + j] - mean);
    var /= H;
    for (int64_t j = 0; j < H; ++j) y[r * H + j] = (x[r * H + j] - mean) / std::sqrt(var + eps) * w[j] + b[j];
  }
  return y;
}

template <typename T>
void check_random(uint64_t salt) {
  Rng rng(salt);
  auto be = backend_for(Device::CPU);
  const double tol = sizeof(T) == 4 ? 2e-5 : 1e-12;
  for (int64_t H : {1, 7, 64, 1000}) {
    const int64_t n = rng.integer(1, 40);
    const double eps = H == 1 ? 1e-5 : 1e-7;
    std::vector<double> xd(n * H), wd(H), bd(H);
    for (int64_t r = 0; r < n; ++r) {
      const double offset = r % 3 == 0 ? rng.normal(0, 1e3) : 0.0, spread = rng.uniform(0.01, 5);
      for (int64_t j = 0; j < H; ++j) xd[r * H + j] = offset + rng.normal(0, spread);
    }
    for (auto& v : wd) v = rng.normal(1, 0.3);
    for (auto& v : bd) v = rng.normal(0, 0.3);
    std::vector<T> x(xd.begin(), xd.end()), w(wd.begin(), wd.end()), b(bd.begin(), bd.end());
    // The reference sees exactly the rounded inputs.
    const auto want = reference(std::vector<double>(x.begin(), x.end()), std::vector<double>(w.begin(), w.end()),
                                std::vector<double>(b.begin(), b.end()), n, H, eps);
    std::vector<T> y(n * H, std::numeric_limits<T>::quiet_NaN());
    be->layernorm_forward(view(x), view(w), view(b), n, H, eps, view(y));
    int bad = 0;
    for (size_t i = 0; i < y.size(); ++i)
      if (!(std::fabs(double(y[i]) - want[i]) <= tol * (1 + std::fabs(want[i])))) ++bad;
    if (bad) std::printf("  H=%lld n=%lld: %d of %zu off\n", (long long)H, (long long)n, bad, y.size());
    CHECK(bad == 0);
    // In place gives the same bits.
    std::vector<T> inplace = x;
    be->layernorm_forward(view(inplace), view(w), view(b), n, H, eps, view(inplace));
    CHECK(inplace == y);
    // One row alone equals that row in the batch.
    const int64_t r = rng.integer(0, n - 1);
    std::vector<T> xr(x.begin() + r * H, x.begin() + (r + 1) * H), yr(H);
    be->layernorm_forward(view(xr), view(w), view(b), 1, H, eps, view(yr));
    CHECK(std::equal(yr.begin(), yr.end(), y.begin() + r * H));
  }
}

}  // namespace

TEST(matches_float64_layernorm_in_float) { check_random<float>(11); }
TEST(matches_float64_layernorm_in_double) { check_random<double>(12); }

TEST(a_constant_row_gives_the_bias) {
  auto be = backend_for(Device::CPU);
  std::vector<float> x(8, 3.25f), w(8, 2.f), b = {1, 2, 3, 4, 5, 6, 7, 8}, y(8, NAN);
  be->layernorm_forward(view(x), view(w), view(b), 1, 8, 1e-7, view(y));
  CHECK(y == b);
}

TEST(bad_shapes_are_refused_by_name) {
  auto be = backend_for(Device::CPU);
  std::vector<float> x(12), w(4), b(3), y(12);
  CHECK_THROWS_WITH(be->layernorm_forward(view(x), view(w), view(b), 3, 4, 1e-7, view(y)), "layernorm_forward: b has 3");
  std::vector<float> b4(4), y8(8);
  CHECK_THROWS_WITH(be->layernorm_forward(view(x), view(w), view(b4), 3, 4, 1e-7, view(y8)), "y has 8 elements, needs 12");
  std::vector<double> wd(4);
  CHECK_THROWS_WITH(be->layernorm_forward(view(x), view(wd), view(b4), 3, 4, 1e-7, view(y)), "w must be F32");
  CHECK_THROWS_WITH(be->layernorm_forward(view(x), view(w), view(b4), 3, 4, -1, view(y)), "eps must be >= 0");
}

TEST_MAIN()
