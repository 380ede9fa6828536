#include "model/rope_freq.h"

#include <cmath>


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

}  // namespace sppo
