// Bias + activation (kernels/bias_act.h) through the CPU backend against float64 definitions
// written here (GELU with the exact erf, tanh, identity), with and without a bias, in fp32 and
// fp64, on fresh random inputs with outputs poisoned with NaN; known GELU values; in place; bad
// arguments are refused by name.
#include <cmath>
#include <limits>
#include <vector>

#include "backend/backend.h"
#include "testing.h"

using namespace sppo;
using sppo_test::Rng;

namespace {

template <typename T>
Tensor view(std::vector<T>& v) {
  return Tensor(v.data(), sizeof(T) == 4 ? DType::F32 : DType::F64, static_cast<int64_t>(v.size()));
}

double act_ref(Activation a, double v) {
  switch (a) {
    case Activation::Identity: return v;
    case Activation::Gelu: return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    case Activation::Tanh: return std::tanh(v);
  }
  return NAN;
}

template <typename T>
void check_random(uint64_t salt) {
  Rng rng(salt);
  auto be = backend_for(Device::CPU);
  const double tol = sizeof(T) == 4 ? 4e-7 : 1e-15;
  for (Activation a : {Activation::Identity, Activation::Gelu, Activation::Tanh})
    for (bool with_bias : {false, true}) {
      const int64_t n = rng.integer(1, 30), H = rng.integer(1, 300);
      std::vector<T> x(n * H), b(H), y(n * H, std::numeric_limits<T>::quiet_NaN());
      for (auto& v : x) v = static_cast<T>(rng.normal(0, 3));
      for (auto& v : b) v = static_cast<T>(rng.normal(0, 1));
      be->bias_act(view(x), with_bias ? view(b) : Tensor(), n, H, a, view(y));
      int bad = 0;
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < H; ++j) {
          const double v = double(x[r * H + j]) + (with_bias ? double(b[j]) : 0.0);
          const double want = act_ref(a, v);
          // fp32: the biased input is rounded once more before the activation.
          const double slack = sizeof(T) == 4 && with_bias ? 1.2e-7 * std::fabs(v) * 1.2 : 0.0;
          if (!(std::fabs(double(y[r * H + j]) - want) <= tol * (1 + std::fabs(want)) + slack)) ++bad;
        }
      if (bad) std::printf("  %s bias=%d: %d of %zu off\n", activation_name(a), int(with_bias), bad, y.size());
      CHECK(bad == 0);
      std::vector<T> inplace = x;
      be->bias_act(view(inplace), with_bias ? view(b) : Tensor(), n, H, a, view(inplace));
      CHECK(inplace == y);
    }
}

}  // namespace

TEST(matches_float64_activations_in_float) { check_random<float>(21); }
TEST(matches_float64_activations_in_double) { check_random<double>(22); }

TEST(gelu_is_the_exact_erf_form) {
  // Values of x * Phi(x) (the tanh approximation differs from these in the 4th decimal).
  auto be = backend_for(Device::CPU);
  std::vector<double> x = {0.0, 1.0, -1.0, 3.0, -6.0}, y(5, NAN);
  be->bias_act(view(x), Tensor(), 1, 5, Activation::Gelu, view(y));
  CHECK_CLOSE(y[0], 0.0, 1e-16, 0);
  CHECK_CLOSE(y[1], 0.8413447460685429, 1e-15, 0);
  CHECK_CLOSE(y[2], -0.15865525393145707, 1e-15, 0);
  CHECK_CLOSE(y[3], 2.99595030590511, 1e-14, 0);
  CHECK_CLOSE(y[4], -5.919525869479969e-09, 1e-20, 0);
}

TEST(bad_arguments_are_refused_by_name) {
  auto be = backend_for(Device::CPU);
  std::vector<float> x(6), b(2), y(6);
  CHECK_THROWS_WITH(be->bias_act(view(x), view(b), 2, 3, Activation::Tanh, view(y)), "bias_act: b has 2 elements, needs 3");
  CHECK_THROWS_WITH(be->bias_act(view(x), Tensor(), 2, 3, static_cast<Activation>(7), view(y)), "unknown activation 7");
  std::vector<int> i6(6);
  CHECK_THROWS_WITH(be->bias_act(Tensor(i6.data(), DType::I32, 6), Tensor(), 2, 3, Activation::Gelu, view(y)),
                    "computes in F32, F64, BF16 or F16");
}

TEST_MAIN()
