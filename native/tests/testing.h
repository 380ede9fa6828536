// A minimal test harness for the native suites (no dependencies): TEST cases register
// themselves, CHECK macros record failures with file:line, main() runs all and prints
// "N passed, N failed". Fresh random inputs come from Rng seeded per run (printed, and
// overridable with SPPO_TEST_SEED) so a failure can be replayed.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/device.h"

namespace sppo_test {

struct Case {
  const char* name;
  std::function<void()> fn;
};
inline std::vector<Case>& registry() {
  static std::vector<Case> r;
  return r;
}
inline int& failures() {
  static int f = 0;
  return f;
}
struct Registrar {
  Registrar(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

inline uint64_t run_seed() {
  static uint64_t seed = [] {
    const char* env = std::getenv("SPPO_TEST_SEED");
    if (env) return static_cast<uint64_t>(std::strtoull(env, nullptr, 10));
    return static_cast<uint64_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count());
  }();
  return seed;
}

// Per-test random source: fresh each run, reproducible from the printed seed.
struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t salt = 0) : gen(run_seed() ^ (salt * 0x9E3779B97F4A7C15ull)) {}
  double uniform(double lo = 0.0, double hi = 1.0) { return std::uniform_real_distribution<double>(lo, hi)(gen); }
  double normal(double mean = 0.0, double std = 1.0) { return std::normal_distribution<double>(mean, std)(gen); }
  int64_t integer(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen); }  // inclusive
};

inline int run_all() {
  std::printf("seed %llu (set SPPO_TEST_SEED to replay)\n", static_cast<unsigned long long>(run_seed()));
  int passed = 0, failed = 0;
  for (auto& c : registry()) {
    int before = failures();
    try {
      c.fn();
    } catch (const std::exception& e) {
      std::printf("  exception: %s\n", e.what());
      ++failures();
    }
    if (failures() == before) {
      ++passed;
      std::printf("ok   %s\n", c.name);
    } else {
      ++failed;
      std::printf("FAIL %s\n", c.name);
    }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace sppo_test

#define SPPO_TEST_CAT2(a, b) a##b
#define SPPO_TEST_CAT(a, b) SPPO_TEST_CAT2(a, b)
#define TEST(name)                                                                        \
  static void name();                                                                     \
  static ::sppo_test::Registrar SPPO_TEST_CAT(reg_, name)(#name, name);                   \
  static void name()

#define CHECK(cond)                                                                       \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::printf("  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);              \
      ++::sppo_test::failures();                                                          \
    }                                                                                     \
  } while (0)

// |a - b| <= atol + rtol * |b|, reported with both values.
#define CHECK_CLOSE(a, b, atol, rtol)                                                     \
  do {                                                                                    \
    double _a = static_cast<double>(a), _b = static_cast<double>(b);                      \
    if (!(std::fabs(_a - _b) <= (atol) + (rtol) * std::fabs(_b))) {                       \
      std::printf("  %s:%d: %s = %.10g, expected %s = %.10g\n", __FILE__, __LINE__, #a,   \
                  _a, #b, _b);                                                            \
      ++::sppo_test::failures();                                                          \
    }                                                                                     \
  } while (0)

// The statement must throw sppo::Error (or another std::exception) whose message contains `part`.
#define CHECK_THROWS_WITH(stmt, part)                                                     \
  do {                                                                                    \
    bool _threw = false;                                                                  \
    try {                                                                                 \
      stmt;                                                                               \
    } catch (const std::exception& _e) {                                                  \
      _threw = std::string(_e.what()).find(part) != std::string::npos;                    \
      if (!_threw) std::printf("  %s:%d: message '%s' lacks '%s'\n", __FILE__, __LINE__,  \
                               _e.what(), part);                                          \
    }                                                                                     \
    if (!_threw) {                                                                        \
      std::printf("  %s:%d: %s did not throw '%s'\n", __FILE__, __LINE__, #stmt, part);   \
      ++::sppo_test::failures();                                                          \
    }                                                                                     \
  } while (0)

#define TEST_MAIN() \
  int main() { return ::sppo_test::run_all(); }

// main() of a GPU suite: exits 77 (ctest's SKIP_RETURN_CODE for *_cuda tests) with the reason
// when this build has no CUDA backend or no device is visible, so a skip is never a pass.
#ifdef SPPO_WITH_CUDA
#define TEST_MAIN_CUDA()                                                                  \
  int main() {                                                                            \
    std::string why;                                                                      \
    if (::sppo::cuda_devices(&why).empty()) {                                             \
      std::printf("skipped: no CUDA device (%s)\n", why.c_str());                         \
      return 77;                                                                          \
    }                                                                                     \
    return ::sppo_test::run_all();                                                        \
  }
#else
#define TEST_MAIN_CUDA()                                                                  \
  int main() {                                                                            \
    std::printf("skipped: this build has no CUDA backend (SPPO_CUDA=off or no nvcc)\n");  \
    return 77;                                                                            \
  }
#endif
