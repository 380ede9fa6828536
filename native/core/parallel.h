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

// As parallel_for, but iterations are handed out one at a time as threads free up: for tasks of
// very unequal cost (attention over sequences of different lengths, longest first).
template <typename Fn>
void parallel_for_dynamic(int64_t n, Fn&& fn) {
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (n > 1)
  for (int64_t i = 0; i < n; ++i) fn(i);
#else
  for (int64_t i = 0; i < n; ++i) fn(i);
#endif
}

}  // namespace sppo
