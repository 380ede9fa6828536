// Helpers shared by the op suites (test_<op>.cpp): random and NaN-poisoned vectors, element-wise
// comparison against a float64 reference with a report of the first misses, central finite
// differences of a float64 objective, and host views for calling an op through the CPU backend
// (where the size checks live).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"
#include "testing.h"

namespace sppo_test {

template <typename T>
std::vector<T> randn(Rng& rng, int64_t n, double std = 1.0) {
  std::vector<T> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<T>(rng.normal(0.0, std));
  return v;
}

// An output buffer every element of which is NaN, so an element the op forgets to write shows.
template <typename T>
std::vector<T> poisoned(int64_t n) {
  return std::vector<T>(static_cast<size_t>(n), std::numeric_limits<T>::quiet_NaN());
}

template <typename T>
std::vector<double> to_f64(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

inline double rms(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return v.empty() ? 0.0 : std::sqrt(s / static_cast<double>(v.size()));
}

// Elements with |got - want| > tol * (|want| + rms(want)) + atol (NaN counts as a miss); prints the
// first few misses under `what` and returns how many there were.
template <typename T>
int count_off(const char* what, const std::vector<T>& got, const std::vector<double>& want, double tol,
              double atol = 0.0) {
  if (got.size() != want.size()) {
    std::printf("  %s: %zu values, expected %zu\n", what, got.size(), want.size());
    return 1;
  }
  const double scale = rms(want);
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = static_cast<double>(got[i]), w = want[i];
    if (std::fabs(g - w) <= tol * (std::fabs(w) + scale) + atol) continue;
    if (++bad <= 3) std::printf("  %s[%zu] = %.10g, expected %.10g\n", what, i, g, w);
  }
  if (bad > 3) std::printf("  %s: %d of %zu values off\n", what, bad, got.size());
  return bad;
}

#define CHECK_NEAR_ALL(what, got, want, tol) CHECK(::sppo_test::count_off(what, got, want, tol) == 0)
#define CHECK_NEAR_ALL_ABS(what, got, want, tol, atol) CHECK(::sppo_test::count_off(what, got, want, tol, atol) == 0)

// A relative tolerance of k units in the last place of T.
template <typename T>
constexpr double ulps(double k) {
  return k * std::numeric_limits<T>::epsilon();
}

// d f / d x_i by central differences, for every i, with step h * (1 + |x_i|).
inline std::vector<double> numeric_grad(const std::function<double(const std::vector<double>&)>& f,
                                        std::vector<double> x, double h = 1e-5) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i], step = h * (1 + std::fabs(x0));
    x[i] = x0 + step;
    const double fp = f(x);
    x[i] = x0 - step;
    const double fm = f(x);
    x[i] = x0;
    g[i] = (fp - fm) / (2 * step);
  }
  return g;
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// The element type of a host vector as the backend names it.
template <typename T>
constexpr sppo::DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return sppo::DType::F32;
  else if constexpr (std::is_same_v<T, double>) return sppo::DType::F64;
  else if constexpr (std::is_same_v<T, int32_t>) return sppo::DType::I32;
  else {
    static_assert(std::is_same_v<T, uint8_t>, "no DType for this element type");
    return sppo::DType::U8;
  }
}

// A backend view of a host vector (the CPU backend's memory is host memory); `drop` elements
// fewer than the vector holds, to provoke the size checks.
template <typename T>
sppo::Tensor view(std::vector<T>& v, int64_t drop = 0) {
  return sppo::Tensor(v.data(), dtype_of<T>(), static_cast<int64_t>(v.size()) - drop);
}

inline std::shared_ptr<sppo::Backend> cpu_backend() { return sppo::backend_for(sppo::Device::CPU); }

}  // namespace sppo_test
