// CPU AdamW over a flat range (kernels/adamw.h), in the parameter's own precision as
// torch.optim.AdamW computes in fp32 (bf16 gradients widened per element); with w16, the bf16 weights are written in the same pass.
#include "kernels/adamw.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/par.h"

namespace sppo::cpu {

template <typename T, typename G>
void adamw_step(T* p, const G* g, T* m, T* v, int64_t n, const AdamwParams& h, const double* sum_squares,
                double max_norm, uint16_t* w16) {
  bool skip = false;
  const T coef = static_cast<T>(optim_math::clip_coef(*sum_squares, max_norm, &skip));
  if (skip) return;
  const optim_math::AdamwScalars<T> s = optim_math::adamw_scalars<T>(h);
  constexpr int64_t kChunk = 1 << 14;
  parallel_for_cost((n + kChunk - 1) / kChunk, 12.0 * kChunk, [&](int64_t c) {
    const int64_t i0 = c * kChunk, i1 = std::min(n, (c + 1) * kChunk);
    if (w16) {
      for (int64_t i = i0; i < i1; ++i) {
        optim_math::adamw_element(p[i], g[i], m[i], v[i], coef, s);
        w16[i] = optim_math::bf16_bits(static_cast<float>(p[i]));
      }
    } else {
      for (int64_t i = i0; i < i1; ++i) optim_math::adamw_element(p[i], g[i], m[i], v[i], coef, s);
    }
  });
}

template void adamw_step<float>(float*, const float*, float*, float*, int64_t, const AdamwParams&, const double*,
                                double, uint16_t*);
template void adamw_step<double>(double*, const double*, double*, double*, int64_t, const AdamwParams&,
                                 const double*, double, uint16_t*);
template void adamw_step<float, uint16_t>(float*, const uint16_t*, float*, float*, int64_t, const AdamwParams&,
                                          const double*, double, uint16_t*);

}  // namespace sppo::cpu
