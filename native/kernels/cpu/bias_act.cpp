// CPU bias + activation (kernels/bias_act.h): one task per row; the formulas are
// kernels/bias_act_math.h's (erf and tanh from libm in T).
#include "kernels/bias_act.h"

#include "kernels/bias_act_math.h"
#include "kernels/cpu/par.h"

namespace sppo {

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::Identity: return "identity";
    case Activation::Gelu: return "gelu";
    case Activation::Tanh: return "tanh";
  }
  return "?";
}

namespace cpu {

namespace {
template <typename T, Activation A>
void rows(const T* x, const T* b, int64_t n, int64_t H, T* y) {
  parallel_for_cost(n, (A == Activation::Identity ? 1.0 : 20.0) * H, [&](int64_t r) {
    const T* xr = x + r * H;
    T* yr = y + r * H;
    for (int64_t j = 0; j < H; ++j) {
      const T v = b ? xr[j] + b[j] : xr[j];
      yr[j] = bias_act_math::apply<T, A>(v);
    }
  });
}
}  // namespace

template <typename T>
void bias_act(const T* x, const T* b, int64_t n, int64_t H, Activation act, T* y) {
  switch (act) {
    case Activation::Identity: return rows<T, Activation::Identity>(x, b, n, H, y);
    case Activation::Gelu: return rows<T, Activation::Gelu>(x, b, n, H, y);
    case Activation::Tanh: return rows<T, Activation::Tanh>(x, b, n, H, y);
  }
}

template void bias_act<float>(const float*, const float*, int64_t, int64_t, Activation, float*);
template void bias_act<double>(const double*, const double*, int64_t, int64_t, Activation, double*);

}  // namespace cpu
}  // namespace sppo
