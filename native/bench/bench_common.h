// Shared pieces of the per-op CPU benchmarks (bench_<op>.cpp): flags with --help, the median of
// timed runs after warmup, the two floors measured in the same run (the copy bandwidth for ops
// that stream memory, the fused-multiply-add peak for ops that compute), and the table.
//
// Every benchmark runs its op through backend_for(Device::CPU) on host vectors (the CPU backend's
// memory is host memory), prints one row per case: shape, median ms, GB/s or GFLOP/s, the floor
// in ms and the multiple of it. The figures are wall clock: on a shared machine they are noisy.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/simd.h"
#include "core/tensor.h"
#if SPPO_HAVE_AVX2_PATH
#include <immintrin.h>
#endif

namespace sppo_bench {

using Clock = std::chrono::steady_clock;

inline double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// "--name value" flags. The caller reads each flag it knows (with its default), then finish()
// refuses the rest; --help prints the usage line and the common flags, and exits.
class Args {
 public:
  Args(int argc, char** argv, const std::string& usage, const std::string& about) {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        std::printf("%s\n%s\nRuns on the CPU backend; prints one row per case: shape, median ms, GB/s or GFLOP/s,\n"
                    "the floor in ms (measured in the same run, best of its runs) and the multiple of it.\n"
                    "common flags: --iters K (timed runs, the median is reported)  --warmup W (untimed runs first)\n"
                    "              --threads T (OpenMP threads; default: all)\n",
                    usage.c_str(), about.c_str());
        std::exit(0);
      }
      if (a.rfind("--", 0) != 0) sppo::fail("unexpected argument '", a, "' (see --help)");
      if (i + 1 >= argc) sppo::fail(a, " needs a value (see --help)");
      values_[a] = argv[++i];
    }
  }

  int64_t integer(const std::string& flag, int64_t def, int64_t min = 1) {
    auto it = values_.find(flag);
    if (it == values_.end()) return def;
    const std::string v = it->second;
    values_.erase(it);
    char* end = nullptr;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end || x < min) sppo::fail(flag, " needs an integer >= ", min, " (got '", v, "')");
    return x;
  }

  std::string text(const std::string& flag, const std::string& def) {
    auto it = values_.find(flag);
    if (it == values_.end()) return def;
    const std::string v = it->second;
    values_.erase(it);
    return v;
  }

  // Reads the common flags, applies --threads, and refuses anything not read.
  void finish(int default_iters, int default_warmup = 1) {
    iters = static_cast<int>(integer("--iters", default_iters));
    warmup = static_cast<int>(integer("--warmup", default_warmup, 0));
    const int64_t threads = integer("--threads", 0, 0);
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(static_cast<int>(threads));
#else
    if (threads > 1) sppo::fail("--threads: this build has no OpenMP, so one thread only");
#endif
    if (!values_.empty()) sppo::fail("unknown flag '", values_.begin()->first, "' (see --help)");
  }

  int iters = 5, warmup = 1;

 private:
  std::map<std::string, std::string> values_;
};

// Median wall-clock ms of fn() over `iters` runs after `warmup` runs.
template <typename Fn>
double time_ms(const Args& a, Fn&& fn) {
  std::vector<double> t;
  for (int i = 0; i < a.warmup + a.iters; ++i) {
    const auto t0 = Clock::now();
    fn();
    if (i >= a.warmup) t.push_back(ms_since(t0));
  }
  return median(t);
}

// The floors take the best of their runs, not the median: other work on the machine only ever
// slows a run down, and a floor is what the hardware can do at best.
//
// Copy bandwidth in GB/s (read + write bytes) of a parallel memcpy of 64 MiB, twice the last-level
// cache of most machines: the rate at which a streaming op can at best move its bytes.
inline double copy_bandwidth_gbs() {
  const size_t bytes = size_t(64) << 20;
  std::vector<unsigned char> a(bytes, 1), b(bytes, 2);
  const int64_t chunks = 64;
  const size_t per = bytes / chunks;
  std::vector<double> t;
  for (int i = 0; i < 6; ++i) {
    const auto t0 = Clock::now();
    sppo::parallel_for(chunks, [&](int64_t c) { std::memcpy(b.data() + c * per, a.data() + c * per, per); });
    if (i > 0) t.push_back(ms_since(t0));
  }
  return 2.0 * bytes / (*std::min_element(t.begin(), t.end()) * 1e6);
}

#if SPPO_HAVE_AVX2_PATH
// 12 independent 8-lane FMA chains: enough to cover the FMA latency on current x86 cores.
SPPO_TARGET_AVX2 inline float fma_loop_avx2(int64_t iters, float seed) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(seed + i);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t k = 0; k < iters; ++k)
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

// The same with 16 lanes, where the CPU has AVX-512 (the matmul kernel uses it there).
__attribute__((target("avx512f"))) inline float fma_loop_avx512(int64_t iters, float seed) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(seed + i);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t k = 0; k < iters; ++k)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

inline bool use_avx512() {
  static const bool on = sppo::simd::use_avx2() && __builtin_cpu_supports("avx512f");
  return on;
}
#else
inline bool use_avx512() { return false; }
#endif

// The widest fused multiply-add this run may use.
inline const char* isa_name() { return use_avx512() ? "AVX-512" : sppo::simd::use_avx2() ? "AVX2" : "portable"; }

// Fused multiply-add peak in GFLOP/s over all threads (2 FLOPs per lane per FMA) with the widest
// vectors the CPU backend uses here: the rate at which a compute-bound op can at best do its
// arithmetic. The portable loop (no AVX2) counts what the compiler's default ISA reaches.
inline double peak_gflops() {
  const int threads = sppo::cpu_threads();
  const int64_t iters = 2 << 20;
  std::vector<float> sink(threads);
  double flops_per_thread = 0;
  std::vector<double> t;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = Clock::now();
    sppo::parallel_for(threads, [&](int64_t i) {
#if SPPO_HAVE_AVX2_PATH
      if (use_avx512()) {
        sink[i] = fma_loop_avx512(iters, float(i));
        return;
      }
      if (sppo::simd::use_avx2()) {
        sink[i] = fma_loop_avx2(iters, float(i));
        return;
      }
#endif
      float acc[64];  // enough independent chains for the compiler's vectors to hide the latency
      for (int j = 0; j < 64; ++j) acc[j] = float(i + j);
      for (int64_t k = 0; k < iters / 8; ++k)
        for (int j = 0; j < 64; ++j) acc[j] = acc[j] * 0.999999f + 1e-7f;
      float s = 0;
      for (float x : acc) s += x;
      sink[i] = s;
    });
    t.push_back(ms_since(t0));
  }
  flops_per_thread = use_avx512()              ? 2.0 * 16 * 12 * double(iters)
                     : sppo::simd::use_avx2() ? 2.0 * 8 * 12 * double(iters)
                                              : 2.0 * 64 * double(iters / 8);
  float keep = 0;
  for (float x : sink) keep += x;
  if (keep == 12345.f) std::printf(" ");  // keeps the loops from being optimised away
  return threads * flops_per_thread / (*std::min_element(t.begin(), t.end()) * 1e6);
}

enum class Bound { Memory, Compute };

// The floors of this run, measured once.
struct Floors {
  double copy_gbs = 0, peak_gflops = 0;
};

inline Floors measure_floors(const char* title) {
  Floors f{copy_bandwidth_gbs(), peak_gflops()};
  std::printf("sppo-native bench: %s\n", title);
  std::printf("device: CPU (%d threads, %s)   copy bandwidth %.1f GB/s (read + write)   FMA peak %.1f GFLOP/s\n",
              sppo::cpu_threads(), isa_name(), f.copy_gbs, f.peak_gflops);
  std::printf("%-22s %-28s %10s %14s %10s %8s\n", "op", "shape", "ms", "rate", "floor ms", "x floor");
  return f;
}

// One row. `amount` is bytes moved (Memory) or FLOPs done (Compute).
inline void row(const Floors& f, const std::string& op, const std::string& shape, double ms, Bound bound,
                double amount) {
  const bool mem = bound == Bound::Memory;
  const double rate = amount / (ms * 1e6);  // GB/s or GFLOP/s
  const double floor_ms = amount / ((mem ? f.copy_gbs : f.peak_gflops) * 1e6);
  char r[32];
  std::snprintf(r, sizeof r, "%.1f %s", rate, mem ? "GB/s" : "GFLOP/s");
  std::printf("%-22s %-28s %10.3f %14s %10.3f %8.2f\n", op.c_str(), shape.c_str(), ms, r, floor_ms, ms / floor_ms);
  std::fflush(stdout);
}

inline std::string dims(std::initializer_list<int64_t> d) {
  std::string s;
  for (int64_t x : d) s += (s.empty() ? "" : "x") + std::to_string(x);
  return s;
}

template <typename T>
sppo::Tensor view(std::vector<T>& v, sppo::DType t) {
  return sppo::Tensor(v.data(), t, static_cast<int64_t>(v.size()));
}
inline sppo::Tensor f32(std::vector<float>& v) { return view(v, sppo::DType::F32); }
inline sppo::Tensor i32(std::vector<int32_t>& v) { return view(v, sppo::DType::I32); }
inline sppo::Tensor u8(std::vector<uint8_t>& v) { return view(v, sppo::DType::U8); }
inline sppo::Tensor f64(std::vector<double>& v) { return view(v, sppo::DType::F64); }

// Reproducible values in [-1, 1) (the values do not matter for speed, only that they are ordinary
// finite numbers).
inline std::vector<float> values(int64_t n, uint64_t seed = 1) {
  std::vector<float> v(static_cast<size_t>(n));
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& x : v) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    x = static_cast<float>((s >> 40) * (1.0 / (1ull << 23)) - 1.0);
  }
  return v;
}

// Runs main_body and turns errors (bad flags included) into a message and exit code 1.
template <typename Body>
int run_main(const char* name, Body&& body) {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace sppo_bench
