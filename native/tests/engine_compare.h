// Helpers of the whole-engine CUDA suites (test_model_cuda, test_pairrm_model_cuda): backend
// tensors to and from host vectors, and a max-norm relative comparison that names the worst element.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "testing.h"

namespace engine_test {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

inline std::shared_ptr<sppo::Backend> cpu_be() { return sppo::backend_for(sppo::Device::CPU); }
inline std::shared_ptr<sppo::Backend> gpu_be() { return sppo::backend_for(sppo::Device::CUDA); }

inline std::vector<float> get(sppo::Backend& be, const sppo::Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel), kNaN);
  be.download(v.data(), t.data, t.bytes());
  return v;
}
inline void put(sppo::Backend& be, const sppo::Tensor& t, const std::vector<float>& v) {
  SPPO_CHECK(static_cast<int64_t>(v.size()) == t.numel, "put: size");
  be.upload(t.data, v.data(), t.bytes());
}

// max |got - want| <= rtol * max |want| + atol, every value finite; prints the worst element.
inline bool expect_rel(const std::string& what, const std::vector<float>& got, const std::vector<float>& want, double rtol,
                double atol = 0) {
  double scale = 0, err = 0;
  size_t at = 0, bad = 0;
  for (float w : want) scale = std::max(scale, std::fabs(double(w)));
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    if (!std::isfinite(got[i]) || !std::isfinite(want[i])) {
      ++bad;
      at = i;
      continue;
    }
    const double d = std::fabs(double(got[i]) - double(want[i]));
    if (d > err && bad == 0) err = d, at = i;
  }
  const double allowed = rtol * scale + atol;
  const bool ok = got.size() == want.size() && bad == 0 && err <= allowed;
  if (!ok) {
    std::printf("  %s: %zu values (want %zu), %zu not finite, max |cuda - cpu| %.3g at %zu (cuda %.9g, cpu %.9g), "
                "scale %.3g, allowed %.3g\n",
                what.c_str(), got.size(), want.size(), bad, err, at, at < got.size() ? got[at] : kNaN,
                at < want.size() ? want[at] : kNaN, scale, allowed);
    ++sppo_test::failures();
  }
  return ok;
}

}  // namespace engine_test
