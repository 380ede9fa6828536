// CUDA RMSNorm (kernels/cuda/rmsnorm.cu) against the CPU backend: forward (y, rstd), backward
// (dx overwritten or accumulated, dw accumulated) on widths that are not multiples of 8 or 32, F32
// and BF16 activations, tensors at unaligned offsets, outputs poisoned with NaN, one larger case;
// dw is the same bits on every run. Skips (exit 77) without a CUDA backend or device.
//
// Tolerances: the row sums run in another order than the CPU's (fp32 per thread, a double tree),
// and nvcc fuses multiply-adds; so each value may be off by 1e-5 of the magnitudes it is made of
// (for dx: |rstd dy w| + |x c|; for dw: the sum of |dy x rstd| over rows), plus 1e-6 relative.
// BF16 outputs add their rounding, 2^-8 relative (a BF16 dw too: the bf16 gradient arena).
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

struct Inputs {
  std::vector<float> x, w, dy, dx0, dw0;
};

Inputs make(Rng& rng, int64_t n, int64_t H, DType dt) {
  Inputs in{sppo_test::randn_f32(rng, n * H, 2.0), sppo_test::randn_f32(rng, H), sppo_test::randn_f32(rng, n * H),
            sppo_test::randn_f32(rng, n * H), sppo_test::randn_f32(rng, H)};
  for (auto& v : in.w) v += 1.f;  // weights near 1, as trained norms are
  if (dt == DType::BF16)
    for (auto* v : {&in.x, &in.w, &in.dy, &in.dx0}) *v = sppo_test::round_bf16(*v);
  return in;
}

// dwt: dw's type (BF16 only with BF16 activations: the bf16 gradient arena).
void run_case(Rng& rng, int64_t n, int64_t H, DType dt, bool accumulate_dx, int64_t off, DType dwt = DType::F32) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const double eps = 1e-5;
  Inputs in = make(rng, n, H, dt);
  if (dwt == DType::BF16) in.dw0 = sppo_test::round_bf16(in.dw0);
  const double out_rtol = dt == DType::BF16 ? std::ldexp(1.0, -8) : 1e-6;
  char what[96];

  // forward
  Dev cx(cpu, in.x, DType::F32), cw(cpu, in.w, DType::F32), cy(cpu, n * H, DType::F32), cr(cpu, n, DType::F32);
  cpu->rmsnorm_forward(cx.t(), cw.t(), n, H, eps, cy.t(), cr.t());
  Dev gx = sppo_test::dev_as(gpu, in.x, dt, off), gw = sppo_test::dev_as(gpu, in.w, dt, off + 1);
  Dev gy(gpu, n * H, dt, off + 2), gr(gpu, n, DType::F32, off + 3);
  gpu->rmsnorm_forward(gx.t(), gw.t(), n, H, eps, gy.t(), gr.t());
  gpu->synchronize();
  const std::vector<float> y = cy.get<float>(), rstd = cr.get<float>();
  std::snprintf(what, sizeof what, "rstd (n=%lld H=%lld %s)", (long long)n, (long long)H, dtype_name(dt));
  sppo_test::expect_close(what, gr.get<float>(), rstd, 0.0, 1e-5);
  std::snprintf(what, sizeof what, "y (n=%lld H=%lld %s)", (long long)n, (long long)H, dtype_name(dt));
  std::vector<double> ytol(y.size());
  for (size_t i = 0; i < y.size(); ++i) ytol[i] = 1e-5 * std::fabs(y[i]) + 1e-30;
  sppo_test::expect_close(what, sppo_test::floats_of(gy, dt), y, ytol, out_rtol);

  // backward, from the CPU's rstd on both sides (the backward contract takes rstd as given)
  Dev cdy(cpu, in.dy, DType::F32), cdx(cpu, in.dx0, DType::F32), cdw(cpu, in.dw0, DType::F32);
  cpu->rmsnorm_backward(cx.t(), cw.t(), cr.t(), cdy.t(), n, H, cdx.t(), cdw.t(), accumulate_dx);
  Dev gr2(gpu, rstd, DType::F32, off + 1), gdy = sppo_test::dev_as(gpu, in.dy, dt, off + 2);
  Dev gdx = accumulate_dx ? sppo_test::dev_as(gpu, in.dx0, dt, off + 3) : Dev(gpu, n * H, dt, off + 3);
  Dev gdw = sppo_test::dev_as(gpu, in.dw0, dwt, off);
  gpu->rmsnorm_backward(gx.t(), gw.t(), gr2.t(), gdy.t(), n, H, gdx.t(), gdw.t(), accumulate_dx);
  gpu->synchronize();
  std::vector<double> dxtol(static_cast<size_t>(n * H)), dwtol(static_cast<size_t>(H));
  for (int64_t r = 0; r < n; ++r) {
    double dot = 0;
    for (int64_t j = 0; j < H; ++j) dot += std::fabs(double(in.dy[r * H + j]) * in.w[j] * in.x[r * H + j]);
    const double rs = rstd[r], c = dot * rs * rs * rs / double(H);
    for (int64_t j = 0; j < H; ++j) {
      const double term = std::fabs(rs * in.dy[r * H + j] * in.w[j]) + std::fabs(in.x[r * H + j]) * c;
      dxtol[r * H + j] = 1e-5 * (term + (accumulate_dx ? std::fabs(in.dx0[r * H + j]) : 0.0)) + 1e-30;
      dwtol[j] += 1e-5 * std::fabs(double(in.dy[r * H + j]) * in.x[r * H + j] * rs);
    }
  }
  for (int64_t j = 0; j < H; ++j) dwtol[j] += 1e-6 * std::fabs(in.dw0[j]) + 1e-30;
  std::snprintf(what, sizeof what, "dx (n=%lld H=%lld %s acc=%d)", (long long)n, (long long)H, dtype_name(dt),
                accumulate_dx);
  sppo_test::expect_close(what, sppo_test::floats_of(gdx, dt), cdx.get<float>(), dxtol, out_rtol);
  std::snprintf(what, sizeof what, "dw (n=%lld H=%lld %s, dw %s)", (long long)n, (long long)H, dtype_name(dt),
                dtype_name(dwt));
  // A BF16 dw: the GPU's fp32 sum rounded once, so within the sum's tolerance plus a bf16 rounding.
  sppo_test::expect_close(what, sppo_test::floats_of(gdw, dwt), cdw.get<float>(), dwtol,
                          dwt == DType::BF16 ? std::ldexp(1.0, -8) : 1e-6);
}

}  // namespace

TEST(forward_and_backward_match_the_cpu) {
  Rng rng(91);
  const int64_t shapes[][2] = {{1, 1}, {3, 7}, {37, 1001}, {65, 257}, {130, 33}};
  int k = 0;
  for (auto& s : shapes)
    for (DType dt : {DType::F32, DType::BF16})
      for (bool acc : {false, true}) run_case(rng, s[0], s[1], dt, acc, k++ % 4);
}

TEST(backward_into_a_bf16_dw_matches_the_cpu_within_one_rounding) {
  Rng rng(94);
  int k = 0;
  for (auto& s : {std::pair<int64_t, int64_t>{1, 1}, {37, 1001}, {130, 33}, {1030, 4096}})
    for (bool acc : {false, true}) run_case(rng, s.first, s.second, DType::BF16, acc, k++ % 4, DType::BF16);
  auto gpu = backend_for(Device::CUDA);  // an F32 op's dw stays F32, as on the CPU
  Dev x(gpu, 12, DType::F32), w(gpu, 4, DType::F32), r(gpu, 3, DType::F32), dx(gpu, 12, DType::F32), dw(gpu, 4, DType::BF16);
  CHECK_THROWS_WITH(gpu->rmsnorm_backward(x.t(), w.t(), r.t(), x.t(), 3, 4, dx.t(), dw.t(), false),
                    "rmsnorm_backward: dw must be F32 (got BF16)");
}

TEST(a_larger_case) {
  Rng rng(92);
  run_case(rng, 1030, 4096, DType::F32, true, 1);  // dw over 17 row chunks, the last one partial
  run_case(rng, 1030, 4096, DType::BF16, false, 0);
}

TEST(dw_is_the_same_bits_every_run) {
  Rng rng(93);
  auto gpu = backend_for(Device::CUDA);
  const int64_t n = 777, H = 515;
  const Inputs in = make(rng, n, H, DType::F32);
  std::vector<float> rstd(n, 0.9f);
  Dev x(gpu, in.x, DType::F32), w(gpu, in.w, DType::F32), r(gpu, rstd, DType::F32), dy(gpu, in.dy, DType::F32);
  std::vector<float> first_dw, first_dx;
  for (int run = 0; run < 3; ++run) {
    Dev dx(gpu, n * H, DType::F32), dw(gpu, std::vector<float>(H, 0.f), DType::F32);
    gpu->rmsnorm_backward(x.t(), w.t(), r.t(), dy.t(), n, H, dx.t(), dw.t(), false);
    gpu->synchronize();
    if (run == 0) {
      first_dw = dw.get<float>();
      first_dx = dx.get<float>();
    } else {
      sppo_test::expect_same_bits("rerun dw", dw.get<float>(), first_dw);
      sppo_test::expect_same_bits("rerun dx", dx.get<float>(), first_dx);
    }
  }
}

TEST(bad_types_and_sizes_are_refused) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  for (auto& be : {cpu, gpu}) {
    Dev x(be, 12, DType::F32), w(be, 4, DType::F32), y(be, 11, DType::F32), r(be, 3, DType::F32);
    CHECK_THROWS_WITH(be->rmsnorm_forward(x.t(), w.t(), 3, 4, 1e-5, y.t(), r.t()),
                      "rmsnorm_forward: y has 11 elements, needs 12");
  }
  Dev x(gpu, 12, DType::BF16), w(gpu, 4, DType::BF16), y(gpu, 12, DType::BF16), r(gpu, 3, DType::BF16);
  CHECK_THROWS_WITH(gpu->rmsnorm_forward(x.t(), w.t(), 3, 4, 1e-5, y.t(), r.t()),
                    "rmsnorm_forward: rstd must be F32 (got BF16)");
}

#endif

TEST_MAIN_CUDA()
