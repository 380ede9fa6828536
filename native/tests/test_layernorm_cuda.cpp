// CUDA LayerNorm (kernels/cuda/layernorm.cu) against the CPU backend: widths that are not multiples
// of 8 or 32 (H = 1 included), F32, BF16 and F16 (PairRM's fp16 mode), in place and not, tensors at unaligned offsets,
// outputs poisoned with NaN, rows far from 0 (the two-pass centring), a constant row (y = b
// exactly), one larger case; the same bits on every run; bad shapes refused as on the CPU.
// Skips (exit 77) without a CUDA backend or device.
//
// Tolerances: both compute in double and round once; the row sums run in another order and nvcc
// fuses the last multiply-add, so the doubles differ by ~1e-15 of the terms (|(x - mean) rstd w|
// + |b|) and the results by at most one rounding of the output type (2^-23, 2^-8 for BF16, 2^-11
// for F16, and F16's subnormal step below 2^-14).
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

void run_case(Rng& rng, int64_t n, int64_t H, DType dt, bool in_place, double offset, int64_t off) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const double eps = 1e-7;
  std::vector<float> x = sppo_test::randn_f32(rng, n * H, 2.0), w = sppo_test::randn_f32(rng, H),
                     b = sppo_test::randn_f32(rng, H);
  for (auto& v : x) v += static_cast<float>(offset);
  for (auto& v : w) v += 1.f;
  if (n > 1)
    for (int64_t j = 0; j < H; ++j) x[j] = 3.25f;  // row 0 constant: variance 0, y = b
  x = sppo_test::round_to(x, dt), w = sppo_test::round_to(w, dt), b = sppo_test::round_to(b, dt);
  Dev cx(cpu, x, DType::F32), cw(cpu, w, DType::F32), cb(cpu, b, DType::F32), cy(cpu, n * H, DType::F32);
  cpu->layernorm_forward(cx.t(), cw.t(), cb.t(), n, H, eps, cy.t());
  std::vector<float> want = cy.get<float>();
  want = sppo_test::round_to(want, dt);
  Dev gx = sppo_test::dev_as(gpu, x, dt, off), gw = sppo_test::dev_as(gpu, w, dt, off + 1),
      gb = sppo_test::dev_as(gpu, b, dt, off + 2), gy(gpu, n * H, dt, off + 3);
  gpu->layernorm_forward(gx.t(), gw.t(), gb.t(), n, H, eps, in_place ? gx.t() : gy.t());
  gpu->synchronize();
  const std::vector<float> got = sppo_test::floats_of(in_place ? gx : gy, dt);
  std::vector<double> tol(want.size());
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < H; ++j) {
      const size_t i = static_cast<size_t>(r * H + j);
      tol[i] = 1e-13 * (std::fabs(double(want[i]) - b[j]) + std::fabs(b[j])) + 1e-30 + sppo_test::rounding_floor(dt);
    }
  char what[112];
  std::snprintf(what, sizeof what, "y (n=%lld H=%lld %s%s offset %g)", (long long)n, (long long)H, dtype_name(dt),
                in_place ? " in place" : "", offset);
  sppo_test::expect_close(what, got, want, tol, sppo_test::rounding_of(dt));
  if (n > 1 && dt == DType::F32)
    for (int64_t j = 0; j < H; ++j) CHECK(got[j] == b[j]);
}

}  // namespace

TEST(forward_matches_the_cpu) {
  Rng rng(401);
  const int64_t shapes[][2] = {{1, 1}, {3, 7}, {37, 1001}, {65, 257}, {130, 33}, {5, 1024}, {2, 4097}};
  int k = 0;
  for (auto& s : shapes)
    for (DType dt : {DType::F32, DType::BF16, DType::F16})
      for (bool in_place : {false, true}) {
        run_case(rng, s[0], s[1], dt, in_place, 0.0, k % 4);
        run_case(rng, s[0], s[1], dt, in_place, 1000.0, (k + 1) % 4);  // a large common offset
        ++k;
      }
}

TEST(a_larger_case) {
  Rng rng(402);
  run_case(rng, 4099, 1024, DType::F32, true, 0.5, 1);  // PairRM's width, many rows
  run_case(rng, 1030, 1024, DType::BF16, false, 0.0, 0);
  run_case(rng, 1030, 1024, DType::F16, true, 0.0, 3);
}

TEST(the_same_bits_every_run) {
  Rng rng(403);
  auto gpu = backend_for(Device::CUDA);
  const int64_t n = 77, H = 1023;
  const auto x = sppo_test::randn_f32(rng, n * H), w = sppo_test::randn_f32(rng, H), b = sppo_test::randn_f32(rng, H);
  Dev gx(gpu, x, DType::F32), gw(gpu, w, DType::F32), gb(gpu, b, DType::F32);
  std::vector<float> first;
  for (int run = 0; run < 3; ++run) {
    Dev gy(gpu, n * H, DType::F32);
    gpu->layernorm_forward(gx.t(), gw.t(), gb.t(), n, H, 1e-5, gy.t());
    gpu->synchronize();
    if (run == 0) first = gy.get<float>();
    else sppo_test::expect_same_bits("rerun y", gy.get<float>(), first);
  }
}

TEST(bad_shapes_are_refused_as_on_the_cpu) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  auto both = [&](const char* what, int64_t n, int64_t H, double eps, int64_t y_size) {
    auto call = [&](const std::shared_ptr<Backend>& be) {
      Dev x(be, 12, DType::F32), w(be, 4, DType::F32), b(be, 4, DType::F32), y(be, y_size, DType::F32);
      be->layernorm_forward(x.t(), w.t(), b.t(), n, H, eps, y.t());
      be->synchronize();
    };
    sppo_test::expect_same_error(what, sppo_test::message_of([&] { call(cpu); }),
                                 sppo_test::message_of([&] { call(gpu); }));
  };
  both("H 0", 3, 0, 1e-5, 12);
  both("negative n", -1, 4, 1e-5, 12);
  both("negative eps", 3, 4, -1.0, 12);
  both("short y", 3, 4, 1e-5, 11);
  both("short w", 2, 5, 1e-5, 12);
  Dev x(gpu, 12, DType::F64), w(gpu, 4, DType::F64), b(gpu, 4, DType::F64), y(gpu, 12, DType::F64);
  CHECK_THROWS_WITH(gpu->layernorm_forward(x.t(), w.t(), b.t(), 3, 4, 1e-5, y.t()),
                    "layernorm_forward: the CUDA backend computes in F32, BF16 or F16 (got F64)");
}

#endif

TEST_MAIN_CUDA()
