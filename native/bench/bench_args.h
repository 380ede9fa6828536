// Shared by the op benchmarks: "--name value" integer options with defaults (an unknown option or
// a bad value is an error naming it; --help lists them), wall-clock medians, GB/s and GFLOP/s.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "core/parallel.h"

namespace sppo_bench {

class Args {
 public:
  Args(int argc, char** argv, std::string usage, std::map<std::string, long long> defaults)
      : values_(std::move(defaults)) {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        std::printf("%s\noptions (integers):", usage.c_str());
        for (auto& [k, v] : values_) std::printf(" --%s %lld", k.c_str(), v);
        std::printf("\n");
        std::exit(0);
      }
      if (a.rfind("--", 0) != 0 || !values_.count(a.substr(2))) die("unknown argument '" + a + "' (see --help)");
      if (i + 1 >= argc) die(a + " needs a value");
      char* end = nullptr;
      const long long v = std::strtoll(argv[++i], &end, 10);
      if (!end || *end || v < 0) die(a + " needs a non-negative integer (got '" + argv[i] + "')");
      values_[a.substr(2)] = v;
    }
  }
  long long operator[](const std::string& k) const { return values_.at(k); }

 private:
  [[noreturn]] static void die(const std::string& msg) {
    std::fprintf(stderr, "%s\n", msg.c_str());
    std::exit(2);
  }
  std::map<std::string, long long> values_;
};

// Median wall-clock milliseconds of `iters` runs of fn after `warmup` runs.
template <typename Fn>
double median_ms(int warmup, int iters, Fn&& fn) {
  std::vector<double> t;
  for (int i = 0; i < warmup + iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= warmup) t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  return t.empty() ? 0 : t[t.size() / 2];
}

inline void print_device() { std::printf("device: CPU (%d threads)\n", sppo::cpu_threads()); }

}  // namespace sppo_bench
