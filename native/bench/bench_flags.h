// The flag values of the model-level benchmarks (bench_model, bench_pairrm), which take named
// string options beside integers (bench_args.h is the op benchmarks' integers-only parser): an
// integer with its least value, a comma-separated list, and the precisions a CPU run may time. A
// bad value is an sppo::Error naming the flag.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/precision.h"

namespace sppo_bench {

inline int64_t parse_int(const std::string& flag, const std::string& v, int64_t min) {
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || x < min) sppo::fail(flag, " needs an integer >= ", min, " (got '", v, "')");
  return x;
}

// "a,b,,c" -> {"a", "b", "c"} (empty items dropped).
inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// Timing runs on the CPU take fp32 only: the CPU's bf16 mode is an emulation for parity checks.
inline void require_timed_cpu_precision(sppo::Precision p) {
  if (p != sppo::Precision::FP32)
    sppo::fail("--precision ", sppo::precision_name(p), " on the CPU is an emulation (", sppo::precision_name(p),
               " storage, fp32 arithmetic) for parity checks, not something to time; use --device cuda, or --plan-only 1");
}

}  // namespace sppo_bench
