// CUDA bias + activation (kernels/cuda/bias_act.cu) against the CPU backend: identity, exact-erf
// GELU and tanh, with and without a bias, F32, BF16 and F16, in place and not, widths that are not
// multiples of 8 (H = 1 included), more rows than one grid's height, tensors at unaligned offsets,
// outputs poisoned with NaN, values from tiny to far in the tails; bad arguments refused as on the
// CPU. Skips (exit 77) without a CUDA backend or device.
//
// Tolerances: the bias add and Identity are the CPU's bits (BF16: the CPU's fp32 result rounded
// to bf16). erf and tanh are CUDA's (2 ulp) against the C library's (1 ulp): tanh within 4 ulp of
// the result; GELU = 0.5 v (1 + erf) within 4 ulp of 0.5 |v| (1 + |erf|), because 1 + erf cancels
// for negative v. BF16 and F16 outputs add their rounding, 2^-8 and 2^-11 relative (and F16's
// subnormal step, 2^-24, absolute).
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

std::vector<float> values(Rng& rng, int64_t count) {
  std::vector<float> x(static_cast<size_t>(count));
  for (auto& v : x) {
    const int64_t k = rng.integer(0, 9);
    v = static_cast<float>(k == 0 ? rng.normal(0, 1e-4) : k == 1 ? rng.normal(0, 8) : rng.normal(0, 1.5));
  }
  return x;
}

void run_case(Rng& rng, int64_t n, int64_t H, Activation act, DType dt, bool with_bias, bool in_place, int64_t off) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  std::vector<float> x = values(rng, n * H), b = values(rng, H);
  x = sppo_test::round_to(x, dt), b = sppo_test::round_to(b, dt);
  Dev cx(cpu, x, DType::F32), cb(cpu, b, DType::F32), cy(cpu, n * H, DType::F32);
  cpu->bias_act(cx.t(), with_bias ? cb.t() : Tensor(), n, H, act, cy.t());
  std::vector<float> want = cy.get<float>();
  Dev gx = sppo_test::dev_as(gpu, x, dt, off), gb = sppo_test::dev_as(gpu, b, dt, off + 1), gy(gpu, n * H, dt, off + 2);
  gpu->bias_act(gx.t(), with_bias ? gb.t() : Tensor(), n, H, act, in_place ? gx.t() : gy.t());
  gpu->synchronize();
  const std::vector<float> got = sppo_test::floats_of(in_place ? gx : gy, dt);
  char what[112];
  std::snprintf(what, sizeof what, "y (n=%lld H=%lld %s %s%s%s)", (long long)n, (long long)H, activation_name(act),
                dtype_name(dt), with_bias ? " bias" : "", in_place ? " in place" : "");
  if (act == Activation::Identity) {
    want = sppo_test::round_to(want, dt);
    sppo_test::expect_same_bits(what, got, want);
    return;
  }
  const double ulp = std::ldexp(1.0, -23);
  std::vector<double> tol(want.size());
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < H; ++j) {
      const size_t i = static_cast<size_t>(r * H + j);
      const double v = double(x[i]) + (with_bias ? double(b[j]) : 0.0);
      const double scale = act == Activation::Gelu ? 0.5 * std::fabs(v) * (1 + std::fabs(std::erf(v / std::sqrt(2.0))))
                                                   : std::fabs(want[i]);
      tol[i] = 4 * ulp * scale + 1e-37 + sppo_test::rounding_floor(dt);
    }
  sppo_test::expect_close(what, got, want, tol, dt == DType::F32 ? 0.0 : sppo_test::rounding_of(dt));
}

}  // namespace

TEST(activations_match_the_cpu) {
  Rng rng(501);
  const int64_t shapes[][2] = {{1, 1}, {3, 7}, {37, 1001}, {65, 257}, {4, 4096}};
  int k = 0;
  for (auto& s : shapes)
    for (Activation act : {Activation::Identity, Activation::Gelu, Activation::Tanh})
      for (DType dt : {DType::F32, DType::BF16, DType::F16})
        for (int flags = 0; flags < 4; ++flags) run_case(rng, s[0], s[1], act, dt, flags & 1, flags & 2, k++ % 4);
}

TEST(more_rows_than_one_grid_height) {
  Rng rng(502);
  run_case(rng, 70001, 3, Activation::Gelu, DType::F32, true, true, 1);  // rows walked grid-stride
  run_case(rng, 2049, 1024, Activation::Tanh, DType::BF16, true, false, 0);
  run_case(rng, 2049, 1024, Activation::Gelu, DType::F16, true, true, 3);
}

TEST(bad_arguments_are_refused_as_on_the_cpu) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  auto both = [&](const char* what, int64_t n, int64_t H, Activation act, int64_t b_size, int64_t y_size) {
    auto call = [&](const std::shared_ptr<Backend>& be) {
      Dev x(be, 12, DType::F32), b(be, b_size, DType::F32), y(be, y_size, DType::F32);
      be->bias_act(x.t(), b.t(), n, H, act, y.t());
      be->synchronize();
    };
    sppo_test::expect_same_error(what, sppo_test::message_of([&] { call(cpu); }),
                                 sppo_test::message_of([&] { call(gpu); }));
  };
  both("H 0", 3, 0, Activation::Gelu, 4, 12);
  both("unknown activation", 3, 4, static_cast<Activation>(7), 4, 12);
  both("short bias", 3, 4, Activation::Tanh, 3, 12);
  both("short y", 3, 4, Activation::Identity, 4, 11);
  Dev x(gpu, 12, DType::F64), y(gpu, 12, DType::F64);
  CHECK_THROWS_WITH(gpu->bias_act(x.t(), Tensor(), 3, 4, Activation::Gelu, y.t()),
                    "bias_act: the CUDA backend computes in F32, BF16 or F16 (got F64)");
}

#endif

TEST_MAIN_CUDA()
