// CPU rotary embeddings (kernels/rope.h).
#include "kernels/rope.h"

#include <cmath>

#include "kernels/cpu/par.h"
#include "kernels/rope_math.h"

namespace sppo::cpu {

template <typename T>
void rope_tables(const float* inv_freq, int64_t half, const int32_t* positions, int64_t n, T* cos_out, T* sin_out) {
  parallel_for_cost(n, 40.0 * half, [&](int64_t r) {
    for (int64_t i = 0; i < half; ++i) {
      const float angle = rope_math::angle(inv_freq[i], positions[r]);
      cos_out[r * half + i] = static_cast<T>(rope_math::cos_of(angle));
      sin_out[r * half + i] = static_cast<T>(rope_math::sin_of(angle));
    }
  });
}

template <typename T>
void rope_apply(T* x, int64_t n, int64_t heads, int64_t head_dim, const T* cos_t, const T* sin_t, bool inverse) {
  const int64_t half = head_dim / 2;
  parallel_for_cost(n, 6.0 * heads * head_dim, [&](int64_t r) {
    const T* c = cos_t + r * half;
    const T* s = sin_t + r * half;
    for (int64_t h = 0; h < heads; ++h) {
      T* v = x + (r * heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) rope_math::rotate(v[i], v[i + half], c[i], s[i], inverse);
    }
  });
}

template void rope_tables<float>(const float*, int64_t, const int32_t*, int64_t, float*, float*);
template void rope_tables<double>(const float*, int64_t, const int32_t*, int64_t, double*, double*);
template void rope_apply<float>(float*, int64_t, int64_t, int64_t, const float*, const float*, bool);
template void rope_apply<double>(double*, int64_t, int64_t, int64_t, const double*, const double*, bool);

}  // namespace sppo::cpu
