// Per-element and per-row math of next-token choice (kernels/sample.h), shared by cpu/sample.cpp
// and cuda/sample.cu (host/device), written so that both compile it to the same bits:
//   - weight(): the CPU's AVX2 weights (core/simd_avx2.h exp8 of (x - m) / t), one lane as a
//     scalar; the CUDA weights are these (the CPU's portable path uses std::exp and agrees to
//     exp's rounding);
//   - quantize(), bit_length(), scaled_draw(): the exact integer pick;
//   - log_int() / logp(): log(q) - log(kept) from IEEE operations only (fdlibm's log reduction
//     and polynomial), because CUDA's log and the C library's may differ in the last bit and a
//     nearly certain token's logp (q close to kept) would show it.
// The arithmetic goes through the *_rn helpers of kernels/rounding_math.h: on the device the
// round-to-nearest intrinsics, which nvcc never fuses into multiply-adds; on the host plain
// operators. Fused multiply-adds are written as fma() on both sides: one rounding everywhere.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/host_device.h"
#include "kernels/rounding_math.h"

namespace sppo::sample_math {

// ---- IEEE operations, the same on host and device ------------------------------------------------
// The round-to-nearest helpers (kernels/rounding_math.h), by their short names.
using rounding::dadd_rn;
using rounding::ddiv_rn;
using rounding::dfma_rn;
using rounding::dmul_rn;
using rounding::dsub_rn;
using rounding::fadd_rn;
using rounding::fdiv_rn;
using rounding::ffma_rn;
using rounding::fmul_rn;
using rounding::fsub_rn;

SPPO_HD inline float rint_even(float x) {  // round half to even (the default rounding mode on the host)
#ifdef __CUDA_ARCH__
  return rintf(x);
#else
  return std::rint(x);
#endif
}
SPPO_HD inline float bits_to_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}
SPPO_HD inline uint64_t double_to_bits(double d) {
#ifdef __CUDA_ARCH__
  return static_cast<uint64_t>(__double_as_longlong(d));
#else
  uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return u;
#endif
}
SPPO_HD inline double bits_to_double(uint64_t u) {
#ifdef __CUDA_ARCH__
  return __longlong_as_double(static_cast<long long>(u));
#else
  double d;
  std::memcpy(&d, &u, sizeof d);
  return d;
#endif
}

// ---- weights ----------------------------------------------------------------------------------
// exp(x) in float, one lane of simd::exp8 (core/simd_avx2.h) step for step: clamp to
// [-103.97, 88.72] (NaN passes through), n = round-to-even(x log2 e), r = x - n ln2 in two
// fused steps, a degree-5 polynomial by fused steps, y = (p r^2 + r) + 1, then y 2^a 2^b with
// a = n >> 1, b = n - a; +inf above the range, 0 below it.
SPPO_HD inline float exp_f32(float x) {
  const float hi = 88.72283935546875f, lo = -103.972084045410f;
  const bool over = x > hi, under = x < lo;
  float xc = lo > x ? lo : x;  // _mm256_max_ps(lo, x)
  xc = hi < xc ? hi : xc;      // _mm256_min_ps(hi, xc)
  const float fx = rint_even(fmul_rn(xc, 1.44269504088896341f));
  float r = ffma_rn(-fx, 0.693359375f, xc);
  r = ffma_rn(-fx, -2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = ffma_rn(p, r, 1.3981999507e-3f);
  p = ffma_rn(p, r, 8.3334519073e-3f);
  p = ffma_rn(p, r, 4.1665795894e-2f);
  p = ffma_rn(p, r, 1.6666665459e-1f);
  p = ffma_rn(p, r, 5.0000001201e-1f);
  const float r2 = fmul_rn(r, r);
  float y = fadd_rn(ffma_rn(p, r2, r), 1.0f);
  const int32_t n = static_cast<int32_t>(fx);
  const int32_t a = n >> 1, b = n - a;  // arithmetic shift, as _mm256_srai_epi32
  const float sa = bits_to_float(static_cast<uint32_t>(a + 127) << 23);
  const float sb = bits_to_float(static_cast<uint32_t>(b + 127) << 23);
  y = fmul_rn(fmul_rn(y, sa), sb);
  if (over) y = INFINITY;
  if (under) y = 0.f;
  return y;
}

// w = exp((x - m) / t) for a row maximum m and temperature t (fp32): the AVX2 path's bits.
SPPO_HD inline float weight(float x, float m, float t) { return exp_f32(fdiv_rn(fsub_rn(x, m), t)); }

// ---- the integer pick -------------------------------------------------------------------------
constexpr int kBits = 40;  // kSampleWeightBits
constexpr double kScale = 1099511627776.0;  // 2^40

// q = floor(w 2^40): exact (w 2^40 < 2^53) for w in [0, 1].
SPPO_HD inline uint64_t quantize(float w) { return static_cast<uint64_t>(static_cast<double>(w) * kScale); }

SPPO_HD inline int bit_length(uint64_t q) {
#ifdef __CUDA_ARCH__
  return 64 - __clzll(static_cast<long long>(q));  // __clzll(0) = 64
#else
  return q ? 64 - __builtin_clzll(q) : 0;
#endif
}

// floor(bits53 * total / 2^53), exactly.
SPPO_HD inline uint64_t scaled_draw(uint64_t bits53, uint64_t total) {
#ifdef __CUDA_ARCH__
  const uint64_t hi = __umul64hi(bits53, total), lo = bits53 * total;  // hi < 2^53
  return (hi << 11) | (lo >> 53);
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(bits53) * total) >> 53);
#endif
}

// ln(x) for an integer x >= 1 (converted to double first, rounding to nearest above 2^53):
// x = 2^k m with m in [sqrt(1/2), sqrt(2)), f = m - 1 (exact), s = f / (2 + f), and
// ln m = f - f^2/2 + s (f^2/2 + R(s^2)) with fdlibm's minimax R (error below 1 ulp).
SPPO_HD inline double log_int(uint64_t x) {
  const double d = static_cast<double>(x);
  const uint64_t bits = double_to_bits(d);
  int k = static_cast<int>(bits >> 52) - 1023;
  double m = bits_to_double((bits & ((uint64_t{1} << 52) - 1)) | (uint64_t{1023} << 52));  // [1, 2)
  if (m > 1.4142135623730951) {
    m = dmul_rn(m, 0.5);  // exact
    ++k;
  }
  const double f = dsub_rn(m, 1.0);  // exact (Sterbenz)
  const double s = ddiv_rn(f, dadd_rn(2.0, f));
  const double dk = static_cast<double>(k);
  const double z = dmul_rn(s, s), w = dmul_rn(z, z);
  constexpr double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01, Lg3 = 2.857142874366239149e-01,
                   Lg4 = 2.222219843214978396e-01, Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                   Lg7 = 1.479819860511658591e-01;
  constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  const double t1 = dmul_rn(w, dfma_rn(w, dfma_rn(w, Lg6, Lg4), Lg2));
  const double t2 = dmul_rn(z, dfma_rn(w, dfma_rn(w, dfma_rn(w, Lg7, Lg5), Lg3), Lg1));
  const double R = dadd_rn(t2, t1);
  const double hfsq = dmul_rn(dmul_rn(0.5, f), f);
  const double u = dfma_rn(s, dadd_rn(hfsq, R), dmul_rn(dk, ln2_lo));  // s (hfsq + R) + k ln2_lo
  return dsub_rn(dmul_rn(dk, ln2_hi), dsub_rn(dsub_rn(hfsq, u), f));    // k ln2_hi exact (k <= 64)
}

// The pick's log-probability: log(q) - log(kept), rounded once to float.
SPPO_HD inline float logp(uint64_t q, uint64_t kept) {
  return static_cast<float>(dsub_rn(log_int(q), log_int(kept)));
}

}  // namespace sppo::sample_math
