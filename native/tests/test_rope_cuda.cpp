// CUDA rotary embeddings (kernels/cuda/rope.cu) against the CPU backend: tables for positions as
// left and right padding give them (0 up to 131071, repeated), head sizes whose half is odd,
// F32 and BF16; apply forward and inverse in place on tensors at unaligned offsets; inverse
// undoes forward. Skips (exit 77) without a CUDA backend or device.
//
// Tolerances: the angle is the same float32 product on both; cos/sin are rounded from double on
// both, by different libraries, so they may differ by one float32 ulp (6e-8 near 1): 1.2e-7
// absolute (one bf16 ulp, 2^-8, for BF16 tables). Apply: |a c - b s| with fused multiply-adds,
// 1e-6 of (|a| + |b|); BF16 adds its rounding, 2^-8 relative.
#include <array>
#include <cmath>
#include <cstdio>
#include <vector>

#include "backend/backend.h"
#include "backend_testing.h"
#include "cuda_compare.h"
#include "testing.h"

using namespace sppo;
using sppo_test::Dev;
using sppo_test::Rng;

#ifdef SPPO_WITH_CUDA
namespace {

std::vector<float> inv_freq_of(int64_t half, double base) {
  std::vector<float> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) f[i] = static_cast<float>(std::pow(base, -2.0 * double(i) / double(2 * half)));
  return f;
}

std::vector<int32_t> positions_of(Rng& rng, int64_t n) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) {
    const int64_t k = rng.integer(0, 3);
    p[r] = k == 0 ? 0 : k == 1 ? int32_t(r) : k == 2 ? 131071 : int32_t(rng.integer(0, 131071));
  }
  return p;
}

void tables_case(Rng& rng, int64_t n, int64_t half, DType dt, int64_t off) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const std::vector<float> inv = inv_freq_of(half, 500000.0);
  const std::vector<int32_t> pos = positions_of(rng, n);
  Dev cf(cpu, inv, DType::F32), cp(cpu, pos, DType::I32), cc(cpu, n * half, DType::F32), cs(cpu, n * half, DType::F32);
  cpu->rope_tables(cf.t(), half, cp.t(), n, cc.t(), cs.t());
  Dev gf(gpu, inv, DType::F32, off), gp(gpu, pos, DType::I32, off + 1);
  Dev gc(gpu, n * half, dt, off + 2), gs(gpu, n * half, dt, off + 3);
  gpu->rope_tables(gf.t(), half, gp.t(), n, gc.t(), gs.t());
  gpu->synchronize();
  std::vector<float> want_c = cc.get<float>(), want_s = cs.get<float>();
  if (dt == DType::BF16) want_c = sppo_test::round_bf16(want_c), want_s = sppo_test::round_bf16(want_s);
  const double atol = dt == DType::BF16 ? std::ldexp(1.0, -8) : 1.2e-7;
  sppo_test::expect_close("cos", sppo_test::floats_of(gc, dt), want_c, atol, 0.0);
  sppo_test::expect_close("sin", sppo_test::floats_of(gs, dt), want_s, atol, 0.0);
}

void apply_case(Rng& rng, int64_t n, int64_t heads, int64_t hd, DType dt, bool inverse, int64_t off) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const int64_t half = hd / 2;
  std::vector<float> x = sppo_test::randn_f32(rng, n * heads * hd), c(n * half), s(n * half);
  for (int64_t i = 0; i < n * half; ++i) {
    const double a = rng.uniform(-3.2, 3.2);
    c[i] = float(std::cos(a)), s[i] = float(std::sin(a));
  }
  if (dt == DType::BF16) x = sppo_test::round_bf16(x), c = sppo_test::round_bf16(c), s = sppo_test::round_bf16(s);
  Dev cx(cpu, x, DType::F32), cc(cpu, c, DType::F32), cs(cpu, s, DType::F32);
  cpu->rope_apply(cx.t(), n, heads, hd, cc.t(), cs.t(), inverse);
  Dev gx = sppo_test::dev_as(gpu, x, dt, off), gc = sppo_test::dev_as(gpu, c, dt, off + 1),
      gs = sppo_test::dev_as(gpu, s, dt, off + 2);
  gpu->rope_apply(gx.t(), n, heads, hd, gc.t(), gs.t(), inverse);
  gpu->synchronize();
  std::vector<double> atol(x.size());
  for (int64_t e = 0; e < n * heads * half; ++e) {
    const int64_t rh = e / half, i = e % half;
    const double m = std::fabs(x[rh * hd + i]) + std::fabs(x[rh * hd + i + half]);
    atol[rh * hd + i] = atol[rh * hd + i + half] = 1e-6 * m + 1e-30;
  }
  char what[96];
  std::snprintf(what, sizeof what, "x (n=%lld heads=%lld hd=%lld %s inverse=%d)", (long long)n, (long long)heads,
                (long long)hd, dtype_name(dt), inverse);
  sppo_test::expect_close(what, sppo_test::floats_of(gx, dt), cx.get<float>(), atol,
                          dt == DType::BF16 ? std::ldexp(1.0, -8) : 0.0);
}

}  // namespace

TEST(tables_match_the_cpu) {
  Rng rng(101);
  int k = 0;
  for (DType dt : {DType::F32, DType::BF16})
    for (auto& s : std::vector<std::array<int64_t, 2>>{{1, 1}, {37, 17}, {1031, 64}, {8192, 64}})
      tables_case(rng, s[0], s[1], dt, k++ % 3);
}

TEST(apply_matches_the_cpu_forward_and_inverse) {
  Rng rng(102);
  int k = 0;
  for (DType dt : {DType::F32, DType::BF16})
    for (bool inverse : {false, true})
      for (auto& s : std::vector<std::array<int64_t, 3>>{{1, 1, 2}, {37, 5, 34}, {130, 8, 128}, {1024, 32, 128}})
        apply_case(rng, s[0], s[1], s[2], dt, inverse, k++ % 4);
}

TEST(inverse_undoes_forward) {
  Rng rng(103);
  auto gpu = backend_for(Device::CUDA);
  const int64_t n = 41, heads = 3, hd = 18, half = hd / 2;
  const std::vector<float> x = sppo_test::randn_f32(rng, n * heads * hd);
  std::vector<float> c(n * half), s(n * half);
  for (int64_t i = 0; i < n * half; ++i) {
    const double a = rng.uniform(-3.2, 3.2);
    c[i] = float(std::cos(a)), s[i] = float(std::sin(a));
  }
  Dev gx(gpu, x, DType::F32, 1), gc(gpu, c, DType::F32), gs(gpu, s, DType::F32);
  gpu->rope_apply(gx.t(), n, heads, hd, gc.t(), gs.t(), false);
  gpu->rope_apply(gx.t(), n, heads, hd, gc.t(), gs.t(), true);
  gpu->synchronize();
  sppo_test::expect_close("x after forward and inverse", gx.get<float>(), x, 1e-6, 1e-6);
}

TEST(odd_head_dim_is_refused_as_on_the_cpu) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  for (auto& be : {cpu, gpu}) {
    Dev x(be, 30, DType::F32), c(be, 10, DType::F32), s(be, 10, DType::F32);
    CHECK_THROWS_WITH(be->rope_apply(x.t(), 2, 3, 5, c.t(), s.t(), false), "rope_apply: head_dim must be even (got 5)");
  }
}

#endif

TEST_MAIN_CUDA()
