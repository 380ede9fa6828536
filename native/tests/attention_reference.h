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

// Magnitudes that bound the rounding of a float32 attention against this reference, per element:
// an implementation that adds the same terms in another order (tiles, fused multiply-adds, another
// exp) differs from another by at most about (terms summed) * 2^-24 times these. Each output's
// magnitude sums the absolute values of the terms it is made of, weighted by how far an error in
// a score travels (1 + |s| + |lse|); zero exactly where the output is exactly zero (padding rows
// and, in backward, padding keys).
struct AttnBounds {
  std::vector<double> out, lse, dq, dk, dv;
};

inline AttnBounds attention_bounds(const sppo::AttnShape& s, const std::vector<double>& q, const std::vector<double>& k,
                                   const std::vector<double>& v, const std::vector<uint8_t>& mask,
                                   const std::vector<double>& dout) {
  const int64_t qw = s.nh * s.hd, kw = s.nkv * s.hd, group = s.nh / s.nkv, N = s.B * s.T;
  AttnBounds r{std::vector<double>(N * qw, 0.0), std::vector<double>(N * s.nh, 0.0), std::vector<double>(N * qw, 0.0),
               std::vector<double>(N * kw, 0.0), std::vector<double>(N * kw, 0.0)};
  const AttnRef ref = attention_reference(s, q, k, v, mask);
  std::vector<double> sc(s.T), dp(s.T);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t t = 0; t < s.T; ++t) {
      const int64_t row = b * s.T + t;
      if (!mask[row]) continue;
      for (int64_t h = 0; h < s.nh; ++h) {
        const int64_t g = h / group;
        const double* qv = &q[row * qw + h * s.hd];
        const double* dov = dout.empty() ? nullptr : &dout[row * qw + h * s.hd];
        const double lse = ref.lse[row * s.nh + h];
        double smax = 0, D = 0, B = 0;
        for (int64_t i = 0; i < s.hd && dov; ++i) {
          D += dov[i] * ref.out[row * qw + h * s.hd + i];
          B += std::fabs(dov[i]) * std::fabs(ref.out[row * qw + h * s.hd + i]);
        }
        for (int64_t j = 0; j <= t; ++j) {
          const int64_t kr = b * s.T + j;
          if (!mask[kr]) continue;
          double d = 0, e = 0;
          for (int64_t i = 0; i < s.hd; ++i) {
            d += qv[i] * k[kr * kw + g * s.hd + i];
            if (dov) e += dov[i] * v[kr * kw + g * s.hd + i];
          }
          sc[j] = d * s.scale;
          dp[j] = e;
          smax = std::max(smax, std::fabs(sc[j]));
        }
        r.lse[row * s.nh + h] = 1 + smax + std::fabs(lse);
        for (int64_t j = 0; j <= t; ++j) {
          const int64_t kr = b * s.T + j;
          if (!mask[kr]) continue;
          const double p = std::exp(sc[j] - lse), spread = 1 + std::fabs(sc[j]) + std::fabs(lse);
          const double* kv = &k[kr * kw + g * s.hd];
          const double* vv = &v[kr * kw + g * s.hd];
          for (int64_t i = 0; i < s.hd; ++i) r.out[row * qw + h * s.hd + i] += p * spread * std::fabs(vv[i]);
          if (!dov) continue;
          double A = 0;
          for (int64_t i = 0; i < s.hd; ++i) A += std::fabs(dov[i] * vv[i]);
          const double w = p * s.scale * (A + B + std::fabs(dp[j] - D) * (1 + spread));
          for (int64_t i = 0; i < s.hd; ++i) {
            r.dq[row * qw + h * s.hd + i] += w * std::fabs(kv[i]);
            r.dk[kr * kw + g * s.hd + i] += w * std::fabs(qv[i]);
            r.dv[kr * kw + g * s.hd + i] += p * spread * std::fabs(dov[i]);
          }
        }
      }
    }
  return r;
}

}  // namespace sppo_test
