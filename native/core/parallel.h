// Multithreading for the CPU backend: OpenMP when the compiler has it, serial otherwise.
#pragma once
#include <cstdint>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace sppo {

inline int cpu_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Runs fn(i) for i in [0, n); iterations must be independent.
template <typename Fn>
void parallel_for(int64_t n, Fn&& fn) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > 1)
  for (int64_t i = 0; i < n; ++i) fn(i);
#else
  for (int64_t i = 0; i < n; ++i) fn(i);
#endif
}

}  // namespace sppo
