// Runtime CPU-feature dispatch for the CPU backend's hot loops. The build stays portable (the
// compiler's default ISA: SSE2 on x86-64, NEON on aarch64); functions marked SPPO_TARGET_AVX2
// are compiled for AVX2+FMA as well and called only when the running CPU has them.
// SPPO_SIMD=off in the environment forces the portable path (to test it on an AVX2 machine).
#pragma once
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SPPO_HAVE_AVX2_PATH 1
#define SPPO_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define SPPO_HAVE_AVX2_PATH 0
#endif

namespace sppo::simd {

// Whether the AVX2+FMA kernels may run: the CPU and OS support them (GCC's cpu model checks
// XGETBV) and SPPO_SIMD is not "off". Decided once per process, so results are reproducible
// within a run.
inline bool use_avx2() {
#if SPPO_HAVE_AVX2_PATH
  static const bool on = [] {
    const char* env = std::getenv("SPPO_SIMD");
    if (env && std::strcmp(env, "off") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return on;
#else
  return false;
#endif
}

}  // namespace sppo::simd
