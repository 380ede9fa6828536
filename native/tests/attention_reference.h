// The float64 reference of causal attention over a padded batch (kernels/attention.h), written
// from the contract's formulas; shared by test_attention and test_attention_decode.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/attention.h"

namespace sppo_test {

struct AttnRef {
  std::vector<double> out, lse;
};

// Row t of sequence b, head h: softmax over keys j <= t with mask 1 of scale <q, k_j>, reading kv
// head h / (nh / nkv); padding rows are 0 with lse 0.
inline AttnRef attention_reference(const sppo::AttnShape& s, const std::vector<double>& q,
                                   const std::vector<double>& k, const std::vector<double>& v,
                                   const std::vector<uint8_t>& mask) {
  const int64_t qw = s.nh * s.hd, kw = s.nkv * s.hd, group = s.nh / s.nkv;
  AttnRef r{std::vector<double>(s.B * s.T * qw, 0.0), std::vector<double>(s.B * s.T * s.nh, 0.0)};
  std::vector<double> sc(s.T);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t t = 0; t < s.T; ++t) {
      const int64_t row = b * s.T + t;
      if (!mask[row]) continue;
      for (int64_t h = 0; h < s.nh; ++h) {
        const int64_t g = h / group;
        double m = -INFINITY;
        for (int64_t j = 0; j <= t; ++j) {
          if (!mask[b * s.T + j]) continue;
          double d = 0;
          for (int64_t i = 0; i < s.hd; ++i) d += q[row * qw + h * s.hd + i] * k[(b * s.T + j) * kw + g * s.hd + i];
          sc[j] = d * s.scale;
          m = std::max(m, sc[j]);
        }
        double z = 0;
        for (int64_t j = 0; j <= t; ++j)
          if (mask[b * s.T + j]) z += std::exp(sc[j] - m);
        for (int64_t j = 0; j <= t; ++j) {
          if (!mask[b * s.T + j]) continue;
          const double p = std::exp(sc[j] - m) / z;
          for (int64_t i = 0; i < s.hd; ++i) r.out[row * qw + h * s.hd + i] += p * v[(b * s.T + j) * kw + g * s.hd + i];
        }
        r.lse[row * s.nh + h] = m + std::log(z);
      }
    }
  return r;
}

inline sppo::AttnShape attn_shape(int64_t B, int64_t T, int64_t nh, int64_t nkv, int64_t hd) {
  return sppo::AttnShape{B, T, nh, nkv, hd, 1.0 / std::sqrt(double(hd))};
}

}  // namespace sppo_test
