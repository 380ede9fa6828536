// The flag values of the model-level benchmarks (bench_model, bench_pairrm), which take named
// string options beside integers (bench_args.h is the op benchmarks' integers-only parser): an
// integer with its least value, and a comma-separated list. A bad value is an sppo::Error naming
// the flag.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"

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

}  // namespace sppo_bench
