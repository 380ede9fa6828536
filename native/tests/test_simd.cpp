// The AVX2 building blocks of the CPU backend against independent references: exp8 within
// 2 ulp of double-precision exp (fresh random inputs plus the edges: overflow, underflow,
// subnormal results, NaN, infinities), bf16 load/store bit-identical to core/dtype.h on random
// and special bit patterns, hsum8 against a double sum. Where the CPU has no AVX2+FMA each case
// prints a "skipped" line (the portable path is covered by the kernel and model suites).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "core/simd.h"
#include "core/simd_avx2.h"
#include "testing.h"

using sppo_test::Rng;

#if SPPO_HAVE_AVX2_PATH
namespace {

// Distance in units in the last place between a float and the correctly rounded double value.
double ulp_error(float got, double want) {
  if (std::isnan(want)) return std::isnan(got) ? 0 : 1e9;
  if (std::isinf(want)) return got == static_cast<float>(want) ? 0 : 1e9;
  const float w = static_cast<float>(want);
  if (w == 0.f) return got == 0.f ? 0 : std::fabs(got) / std::numeric_limits<float>::denorm_min();
  const float next = std::nextafter(std::fabs(w), std::numeric_limits<float>::infinity());
  return std::fabs(static_cast<double>(got) - want) / (static_cast<double>(next) - std::fabs(static_cast<double>(w)));
}

SPPO_TARGET_AVX2 void exp8_array(const float* x, float* y, size_t n) {
  for (size_t i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, sppo::simd::exp8(_mm256_loadu_ps(x + i)));
}
SPPO_TARGET_AVX2 void bf16_roundtrip(const float* x, uint16_t* bits, float* back, size_t n) {
  for (size_t i = 0; i + 8 <= n; i += 8) {
    sppo::simd::store_bf16x8(bits + i, _mm256_loadu_ps(x + i));
    _mm256_storeu_ps(back + i, sppo::simd::load_bf16x8(bits + i));
  }
}
SPPO_TARGET_AVX2 float hsum(const float* x) { return sppo::simd::hsum8(_mm256_loadu_ps(x)); }

// False, with a visible line, where the AVX2 path cannot run (no AVX2+FMA, or SPPO_SIMD=off).
bool avx2_or_skip() {
  if (sppo::simd::use_avx2()) return true;
  std::printf("  skipped: the AVX2+FMA path is not in use here (CPU without it, or SPPO_SIMD=off)\n");
  return false;
}

}  // namespace

TEST(exp8_is_within_two_ulp_of_double_exp) {
  if (!avx2_or_skip()) return;
  Rng rng(1);
  std::vector<float> x;
  for (int i = 0; i < 200000; ++i) x.push_back(static_cast<float>(rng.uniform(-110.0, 90.0)));
  for (int i = 0; i < 20000; ++i) x.push_back(static_cast<float>(rng.uniform(-1.0, 1.0)));
  // Edges: around overflow (88.72), the subnormal range (-87.3 .. -103.97), exact zero.
  const float edges[] = {0.f, -0.f, 88.72f, 88.7228f, 88.73f, -87.33f, -100.f, -103.97f, -103.98f, -104.f, 1e-30f, -1e-30f};
  for (float e : edges) x.push_back(e);
  while (x.size() % 8) x.push_back(static_cast<float>(rng.uniform(-5, 5)));
  std::vector<float> y(x.size());
  exp8_array(x.data(), y.data(), x.size());
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double e = ulp_error(y[i], std::exp(static_cast<double>(x[i])));
    if (e > worst) worst = e, at = i;
  }
  std::printf("  exp8 worst error %.3f ulp at x = %.9g\n", worst, x[at]);
  CHECK(worst <= 2.0);
}

TEST(exp8_special_values) {
  if (!avx2_or_skip()) return;
  const float inf = std::numeric_limits<float>::infinity();
  float x[8] = {std::nanf(""), inf, -inf, 1000.f, -1000.f, 0.f, 1.f, -1.f};
  float y[8];
  exp8_array(x, y, 8);
  CHECK(std::isnan(y[0]));
  CHECK(std::isinf(y[1]) && y[1] > 0);
  CHECK(y[2] == 0.f);
  CHECK(std::isinf(y[3]) && y[3] > 0);
  CHECK(y[4] == 0.f);
  CHECK(y[5] == 1.f);
  CHECK_CLOSE(y[6], std::exp(1.0), 0, 2.5e-7);
  CHECK_CLOSE(y[7], std::exp(-1.0), 0, 2.5e-7);
}

TEST(bf16_store_and_load_match_the_scalar_conversions) {
  if (!avx2_or_skip()) return;
  Rng rng(2);
  std::vector<float> x;
  for (int i = 0; i < 100000; ++i) {
    // Random bit patterns cover NaNs, infinities, subnormals and rounding ties.
    uint32_t u = static_cast<uint32_t>(rng.integer(0, 0xffffffffLL));
    if (i % 4 == 0) u = (u & 0xffff0000u) | 0x8000u;  // exact tie
    float f;
    std::memcpy(&f, &u, 4);
    x.push_back(f);
  }
  std::vector<uint16_t> bits(x.size());
  std::vector<float> back(x.size());
  bf16_roundtrip(x.data(), bits.data(), back.data(), x.size());
  int bad_store = 0, bad_load = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (bits[i] != sppo::f32_to_bf16(x[i])) ++bad_store;
    const float want = sppo::bf16_to_f32(bits[i]);
    if (std::memcmp(&want, &back[i], 4) != 0) ++bad_load;
  }
  CHECK(bad_store == 0);
  CHECK(bad_load == 0);
}

TEST(hsum8_matches_a_double_sum) {
  if (!avx2_or_skip()) return;
  Rng rng(3);
  for (int t = 0; t < 1000; ++t) {
    float x[8];
    double want = 0;
    for (float& v : x) want += (v = static_cast<float>(rng.normal(0, 10)));
    CHECK_CLOSE(hsum(x), want, 1e-4, 1e-6);
  }
}

#else
TEST(no_avx2_path_on_this_architecture) {
  std::printf("  skipped: no AVX2 code path is compiled for this architecture\n");
}
#endif

TEST_MAIN()
