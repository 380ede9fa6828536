// CPU sum of squares for global-norm clipping (kernels/global_norm.h): fixed chunks, each summed
// in double in index order, chunk partials added in chunk order.
#include "kernels/global_norm.h"

#include <algorithm>
#include <cstddef>
#include <vector>

#include "kernels/cpu/par.h"
#include "kernels/optim_math.h"

namespace sppo::cpu {

template <typename T>
void sum_squares(const T* g, int64_t n, double* acc) {
  const int64_t chunks = (n + kNormChunk - 1) / kNormChunk;
  std::vector<double> part(static_cast<size_t>(chunks), 0.0);
  parallel_for_cost(chunks, static_cast<double>(kNormChunk), [&](int64_t c) {
    const int64_t i0 = c * kNormChunk, i1 = std::min(n, i0 + kNormChunk);
    double s = 0;
    for (int64_t i = i0; i < i1; ++i) {
      const double v = static_cast<double>(optim_math::load_grad(g[i]));  // bf16 bits widened exactly
      s += v * v;
    }
    part[c] = s;
  });
  double s = *acc;
  for (double p : part) s += p;
  *acc = s;
}

template void sum_squares<float>(const float*, int64_t, double*);
template void sum_squares<double>(const double*, int64_t, double*);
template void sum_squares<uint16_t>(const uint16_t*, int64_t, double*);

}  // namespace sppo::cpu
