#include "model/rope.h"

#include <cmath>

#include "model/cpu/par.h"

namespace sppo {

std::vector<float> rope_inv_freq(const LlamaConfig& c) {
  const int64_t half = c.head_dim / 2;
  std::vector<float> inv(half);
  const float dim = static_cast<float>(c.head_dim);
  for (int64_t i = 0; i < half; ++i) {
    // 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all in float32.
    const float expo = static_cast<float>(2 * i) / dim;
    const float p = static_cast<float>(std::pow(c.rope_theta, static_cast<double>(expo)));
    inv[i] = 1.0f / p;
  }
  if (c.rope_type == RopeType::Linear) {
    for (auto& f : inv) f = f / static_cast<float>(c.rope_factor);
  } else if (c.rope_type == RopeType::Llama3) {
    const float factor = static_cast<float>(c.rope_factor);
    const float low = static_cast<float>(c.rope_low_freq_factor);
    const float high = static_cast<float>(c.rope_high_freq_factor);
    const double old_ctx = static_cast<double>(c.rope_original_max_position);
    const double low_wavelen = old_ctx / c.rope_low_freq_factor;
    const double high_wavelen = old_ctx / c.rope_high_freq_factor;
    for (auto& f : inv) {
      const float wavelen = static_cast<float>(2.0 * 3.14159265358979323846) / f;
      float scaled = wavelen > low_wavelen ? f / factor : f;
      const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
      if (medium) {
        const float smooth = (static_cast<float>(old_ctx) / wavelen - low) / (high - low);
        scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
      }
      f = scaled;
    }
  }
  return inv;
}

template <typename T>
void rope_tables(const std::vector<float>& inv_freq, const int64_t* positions, int64_t n, T* cos_out, T* sin_out) {
  const int64_t half = static_cast<int64_t>(inv_freq.size());
  parallel_for_cost(n, 40.0 * half, [&](int64_t r) {
    const float pos = static_cast<float>(positions[r]);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = inv_freq[i] * pos;  // one float32 product, as transformers
      cos_out[r * half + i] = static_cast<T>(static_cast<float>(std::cos(static_cast<double>(angle))));
      sin_out[r * half + i] = static_cast<T>(static_cast<float>(std::sin(static_cast<double>(angle))));
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
      for (int64_t i = 0; i < half; ++i) {
        const T a = v[i], b = v[i + half];
        if (!inverse) {
          v[i] = a * c[i] - b * s[i];
          v[i + half] = b * c[i] + a * s[i];
        } else {
          v[i] = a * c[i] + b * s[i];
          v[i + half] = b * c[i] - a * s[i];
        }
      }
    }
  });
}

template void rope_tables<float>(const std::vector<float>&, const int64_t*, int64_t, float*, float*);
template void rope_tables<double>(const std::vector<float>&, const int64_t*, int64_t, double*, double*);
template void rope_apply<float>(float*, int64_t, int64_t, int64_t, const float*, const float*, bool);
template void rope_apply<double>(double*, int64_t, int64_t, int64_t, const double*, const double*, bool);

}  // namespace sppo
