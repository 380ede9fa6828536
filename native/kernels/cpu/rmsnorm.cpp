// CPU RMSNorm forward and backward (kernels/rmsnorm.h).
#include "kernels/rmsnorm.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/par.h"
#include "kernels/rmsnorm_math.h"

namespace sppo::cpu {

template <typename T>
void rmsnorm_forward(const T* x, const T* w, int64_t n, int64_t H, double eps, T* y, T* rstd) {
  parallel_for_cost(n, 3.0 * H, [&](int64_t r) {
    const T* xr = x + r * H;
    T ss = 0;
    for (int64_t j = 0; j < H; ++j) ss += xr[j] * xr[j];
    const T rs = rmsnorm_math::rstd(ss, H, eps);
    rstd[r] = rs;
    T* yr = y + r * H;
    for (int64_t j = 0; j < H; ++j) yr[j] = rmsnorm_math::forward(xr[j], w[j], rs);
  });
}

template <typename T>
void rmsnorm_backward(const T* x, const T* w, const T* rstd, const T* dy, int64_t n, int64_t H, T* dx, T* dw,
                      bool accumulate_dx) {
  parallel_for_cost(n, 5.0 * H, [&](int64_t r) {
    const T* xr = x + r * H;
    const T* dyr = dy + r * H;
    const T rs = rstd[r];
    T dot = 0;
    for (int64_t j = 0; j < H; ++j) dot += dyr[j] * w[j] * xr[j];
    const T c = rmsnorm_math::backward_coef(dot, rs, H);
    T* dxr = dx + r * H;
    for (int64_t j = 0; j < H; ++j) {
      const T g = rmsnorm_math::backward_dx(xr[j], w[j], dyr[j], rs, c);
      dxr[j] = accumulate_dx ? dxr[j] + g : g;
    }
  });
  // dw_j = sum_r dy_rj x_rj r_r, parallel over column blocks so each sum has a fixed order.
  constexpr int64_t kCols = 64;
  parallel_for_cost((H + kCols - 1) / kCols, 3.0 * kCols * n, [&](int64_t blk) {
    const int64_t j0 = blk * kCols, j1 = std::min(H, j0 + kCols);
    for (int64_t r = 0; r < n; ++r) {
      const T* xr = x + r * H;
      const T* dyr = dy + r * H;
      const T rs = rstd[r];
      for (int64_t j = j0; j < j1; ++j) dw[j] += rmsnorm_math::dw_term(xr[j], dyr[j], rs);
    }
  });
}

template void rmsnorm_forward<float>(const float*, const float*, int64_t, int64_t, double, float*, float*);
template void rmsnorm_forward<double>(const double*, const double*, int64_t, int64_t, double, double*, double*);
template void rmsnorm_backward<float>(const float*, const float*, const float*, const float*, int64_t, int64_t,
                                      float*, float*, bool);
template void rmsnorm_backward<double>(const double*, const double*, const double*, const double*, int64_t, int64_t,
                                       double*, double*, bool);

}  // namespace sppo::cpu
