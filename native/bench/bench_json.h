// The benchmarks' JSON reports (bench_model, bench_pairrm): one object of already formatted
// values in insertion order (non-finite numbers as null), and a report written as the header's
// fields followed by "results": [rows]. Rewritten whole each time, so a run stopped by a timeout
// keeps the rows it finished.
#pragma once
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace sppo_bench {

struct JsonRow {
  std::vector<std::pair<std::string, std::string>> kv;
  JsonRow& num(const std::string& k, double v) {
    char b[64];
    std::snprintf(b, sizeof b, std::isfinite(v) ? "%.9g" : "null", v);
    kv.emplace_back(k, b);
    return *this;
  }
  JsonRow& str(const std::string& k, const std::string& v) {
    kv.emplace_back(k, "\"" + v + "\"");
    return *this;
  }
  JsonRow& flag(const std::string& k, bool v) {
    kv.emplace_back(k, v ? "true" : "false");
    return *this;
  }
  JsonRow& obj(const std::string& k, const JsonRow& v) {
    kv.emplace_back(k, v.text());
    return *this;
  }
  std::string text() const {
    std::string s = "{";
    for (size_t i = 0; i < kv.size(); ++i) s += (i ? ", \"" : "\"") + kv[i].first + "\": " + kv[i].second;
    return s + "}";
  }
};

inline void write_json_report(const std::string& path, const JsonRow& head, const std::vector<JsonRow>& rows) {
  std::ofstream f(path);
  if (!f) sppo::fail("cannot write --json file '", path, "'");
  std::string h = head.text();
  h.pop_back();
  f << h << (head.kv.empty() ? "" : ", ") << "\"results\": [\n";
  for (size_t i = 0; i < rows.size(); ++i) f << "  " << rows[i].text() << (i + 1 < rows.size() ? ",\n" : "\n");
  f << "]}\n";
}

// UTC, ISO 8601 to the second.
inline std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace sppo_bench
