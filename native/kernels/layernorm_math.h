// Per-row and per-element math of LayerNorm (kernels/layernorm.h), shared by cpu/layernorm.cpp and
// cuda/layernorm.cu (host/device), all in double. The row sums that feed them are each backend's
// own (the CPU adds in index order, the GPU per thread and then in a fixed tree), and nvcc fuses
// the last multiply-add, so the twins agree to a few double roundings before the one to T.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/host_device.h"

namespace sppo::layernorm_math {

// 1 / sqrt(var + eps) from the row's sum of squared deviations (biased variance).
SPPO_HD inline double rstd(double sum_sq_dev, int64_t H, double eps) {
  return 1.0 / std::sqrt(sum_sq_dev / static_cast<double>(H) + eps);
}

// y = (x - mean) rstd w + b, centred in double (in T, the rounded mean of a row far from 0 would
// shift every output).
SPPO_HD inline double apply(double x, double mean, double rs, double w, double b) { return (x - mean) * rs * w + b; }

}  // namespace sppo::layernorm_math
