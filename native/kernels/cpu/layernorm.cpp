// CPU LayerNorm forward (kernels/layernorm.h): one task per row, all arithmetic in double (the
// formulas around the row sums are kernels/layernorm_math.h's).
#include "kernels/layernorm.h"

#include "kernels/cpu/par.h"
#include "kernels/layernorm_math.h"

namespace sppo::cpu {

template <typename T>
void layernorm_forward(const T* x, const T* w, const T* b, int64_t n, int64_t H, double eps, T* y) {
  parallel_for_cost(n, 4.0 * H, [&](int64_t r) {
    const T* xr = x + r * H;
    double sum = 0;
    for (int64_t j = 0; j < H; ++j) sum += static_cast<double>(xr[j]);
    const double mean = sum / static_cast<double>(H);
    double ss = 0;
    for (int64_t j = 0; j < H; ++j) {
      const double d = static_cast<double>(xr[j]) - mean;
      ss += d * d;
    }
    const double rs = layernorm_math::rstd(ss, H, eps);
    T* yr = y + r * H;  // may be xr: each element is read before it is written
    for (int64_t j = 0; j < H; ++j)
      yr[j] = static_cast<T>(layernorm_math::apply(static_cast<double>(xr[j]), mean, rs, static_cast<double>(w[j]),
                                                   static_cast<double>(b[j])));
  });
}

template void layernorm_forward<float>(const float*, const float*, const float*, int64_t, int64_t, double, float*);
template void layernorm_forward<double>(const double*, const double*, const double*, int64_t, int64_t, double,
                                        double*);

}  // namespace sppo::cpu
