// CUDA sum of squares (kernels/cuda/global_norm.cu) against the CPU backend: sizes across the
// 65536-element chunks (one, several, a partial last one), ranges added into one device scalar
// one after another (buckets), gradients at unaligned offsets, one larger case; the same bits on
// every run; BF16 gradients (the bf16 gradient arena). Skips (exit 77) without a CUDA backend or
// device.
//
// Tolerance: both sum squares in double, in different orders: 1e-13 relative (about n^(1/2)
// double roundings of positive terms).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "backend/backend.h"
#include "backend_testing.h"
#include "cuda_compare.h"
#include "kernels/global_norm.h"
#include "testing.h"

using namespace sppo;
using sppo_test::Dev;
using sppo_test::Rng;

#ifdef SPPO_WITH_CUDA
namespace {

// dt: the gradients' type (BF16: the bf16 gradient arena; g must hold bf16 values then).
double run(const std::shared_ptr<Backend>& be, const std::vector<float>& g, const std::vector<int64_t>& cuts,
           double start, int64_t off, DType dt = DType::F32) {
  Dev dg = sppo_test::dev_as(be, g, dt, off);
  Dev acc(be, std::vector<double>{start}, DType::F64);
  int64_t begin = 0;
  for (int64_t end : cuts) {
    be->sum_squares(dg.t().slice(begin, end - begin), end - begin, acc.t());
    begin = end;
  }
  be->synchronize();
  return acc.get<double>()[0];
}

}  // namespace

TEST(sums_match_the_cpu_across_chunks_and_buckets) {
  Rng rng(131);
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const int64_t sizes[] = {1, 7, kNormChunk - 1, kNormChunk, kNormChunk + 1, 3 * kNormChunk + 12345};
  int k = 0;
  for (int64_t n : sizes) {
    const std::vector<float> g = sppo_test::randn_f32(rng, n, 1e-3);
    // One range, then the same values as three buckets of uneven sizes added into one scalar.
    for (auto cuts : {std::vector<int64_t>{n}, std::vector<int64_t>{n / 3, n / 3 + n / 5 + (n > 1), n}}) {
      const double want = run(cpu, g, cuts, 2.5, 0), got = run(gpu, g, cuts, 2.5, k++ % 3);
      CHECK_CLOSE(got, want, 0.0, 1e-13);
    }
  }
}

// BF16 gradients, widened exactly: the GPU over BF16 against the CPU over the same bf16 values in
// F32 (and in BF16), in buckets.
TEST(bf16_gradients_match_the_cpu) {
  Rng rng(133);
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  int k = 0;
  for (int64_t n : {int64_t{1}, int64_t{kNormChunk + 1}, 3 * kNormChunk + 12345}) {
    const std::vector<float> g = sppo_test::round_bf16(sppo_test::randn_f32(rng, n, 1e-3));
    const std::vector<int64_t> cuts = {n / 3, n};
    const double want = run(cpu, g, cuts, 2.5, 0), want16 = run(cpu, g, cuts, 2.5, 0, DType::BF16);
    CHECK(want == want16);
    CHECK_CLOSE(run(gpu, g, cuts, 2.5, k++ % 3, DType::BF16), want, 0.0, 1e-13);
  }
}

TEST(a_larger_case_and_the_same_bits_every_run) {
  Rng rng(132);
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const int64_t n = 50'000'017;  // a 50M-parameter bucket
  const std::vector<float> g = sppo_test::randn_f32(rng, n, 1e-2);
  const double want = run(cpu, g, {n}, 0.0, 0);
  const double first = run(gpu, g, {n}, 0.0, 1);
  CHECK_CLOSE(first, want, 0.0, 1e-13);
  for (int r = 0; r < 2; ++r) {
    const double again = run(gpu, g, {n}, 0.0, 1);
    CHECK(std::memcmp(&again, &first, sizeof first) == 0);
  }
}

TEST(non_finite_gradients_give_a_non_finite_sum) {
  auto gpu = backend_for(Device::CUDA);
  std::vector<float> g(100000, 1.f);
  g[77777] = INFINITY;
  CHECK(std::isinf(run(gpu, g, {100000}, 0.0, 0)));
  g[77777] = NAN;
  CHECK(std::isnan(run(gpu, g, {100000}, 0.0, 0)));
}

#endif

TEST_MAIN_CUDA()
