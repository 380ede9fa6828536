// parallel_for with a work estimate: small loops run serially, because waking OpenMP threads
// costs far more than tiny tensors' math (especially on a loaded 2-core machine).
#pragma once
#include <cstdint>

#include "core/parallel.h"

namespace sppo {

template <typename Fn>
void parallel_for_cost(int64_t n, double cost_per_item, Fn&& fn) {
  constexpr double kMinParallelWork = 1 << 17;  // about 100k multiply-adds
  if (n <= 1 || static_cast<double>(n) * cost_per_item < kMinParallelWork) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  parallel_for(n, fn);
}

}  // namespace sppo
