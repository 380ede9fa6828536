// The CUDA matrix product (cuBLASLt, kernels/cuda/matmul.cu) against the CPU backend through the
// op table, on fresh random inputs: every transpose form, with and without accumulation, F32,
// BF16 inputs with F32 or BF16 output, F16 inputs (PairRM's fp16 mode) with F32 or F16 output, odd shapes (not multiples of 8), operands at unaligned
// offsets, outputs poisoned with NaN, one larger case; then K = 0, and the CPU backend's
// messages for bad sizes. Skips (exit 77) where the build has no CUDA backend or no GPU is seen.
//
// Tolerances: fp32 products differ from the CPU's only by summation order, so each element may
// be off by 8 eps sqrt(K) sum_k |a_ik b_kj| (eps = 2^-23; the random-walk size of two
// different fp32 roundings). BF16 inputs are compared with the CPU run on the same bf16 values
// (their products are exact in fp32), so the same bound holds; a BF16 output adds its rounding,
// 2^-8 relative (F16 likewise: exact products, 2^-11 and the subnormal step for its output).
#include <cmath>
#include <cstdio>
#include <cstdlib>
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

struct Case {
  int64_t M, N, K;
  bool ta, tb, acc;
  DType in, out;
  int64_t off_a, off_b, off_c;  // element offsets inside the device allocations
};

void run_case(Rng& rng, const Case& c) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const int64_t M = c.M, N = c.N, K = c.K;
  std::vector<float> A = sppo_test::randn_f32(rng, M * K), B = sppo_test::randn_f32(rng, K * N),
                     C0 = sppo_test::randn_f32(rng, M * N);
  A = sppo_test::round_to(A, c.in), B = sppo_test::round_to(B, c.in);
  C0 = sppo_test::round_to(C0, c.out);

  // The CPU reference in F32 on exactly the values the device holds.
  Dev ca(cpu, A, DType::F32), cb(cpu, B, DType::F32), cc(cpu, C0, DType::F32);
  cpu->matmul(ca.t(), cb.t(), cc.t(), M, N, K, c.ta, c.tb, c.acc);
  const std::vector<float> want = cc.get<float>();

  auto upload = [&](const std::vector<float>& v, DType t, int64_t off) { return sppo_test::dev_as(gpu, v, t, off); };
  Dev ga = upload(A, c.in, c.off_a), gb = upload(B, c.in, c.off_b);
  Dev gc = c.acc ? upload(C0, c.out, c.off_c) : Dev(gpu, M * N, c.out, c.off_c);  // NaN unless accumulating
  gpu->matmul(ga.t(), gb.t(), gc.t(), M, N, K, c.ta, c.tb, c.acc);
  gpu->synchronize();
  const std::vector<float> got = sppo_test::floats_of(gc, c.out);

  std::vector<double> atol(static_cast<size_t>(M * N));
  const double eps = std::ldexp(1.0, -23);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = c.acc ? std::fabs(C0[i * N + j]) : 0.0;
      for (int64_t k = 0; k < K; ++k)
        s += std::fabs((c.ta ? A[k * M + i] : A[i * K + k]) * (c.tb ? B[j * K + k] : B[k * N + j]));
      atol[i * N + j] = 8 * eps * std::sqrt(double(K) + 1) * s + 1e-30 + sppo_test::rounding_floor(c.out);
    }
  char what[160];
  std::snprintf(what, sizeof what, "C (M=%lld N=%lld K=%lld ta=%d tb=%d acc=%d %s->%s offsets %lld/%lld/%lld)",
                (long long)M, (long long)N, (long long)K, c.ta, c.tb, c.acc, dtype_name(c.in), dtype_name(c.out),
                (long long)c.off_a, (long long)c.off_b, (long long)c.off_c);
  sppo_test::expect_close(what, got, want, atol, c.out == DType::F32 ? 0.0 : sppo_test::rounding_of(c.out));
}

}  // namespace

TEST(every_form_and_type_matches_the_cpu) {
  Rng rng(61);
  const int64_t shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 33, 65}, {1, 1001, 513}, {129, 67, 255}};
  const DType types[][2] = {{DType::F32, DType::F32},  {DType::BF16, DType::BF16}, {DType::BF16, DType::F32},
                            {DType::F16, DType::F16}, {DType::F16, DType::F32}};
  int n = 0;
  for (auto& s : shapes)
    for (int form = 0; form < 4; ++form)
      for (bool acc : {false, true})
        for (auto& t : types) {
          // Aligned and unaligned starts in turn (odd element offsets break 16-byte alignment).
          const int64_t off = (n++ % 3 == 0) ? 0 : 1 + n % 5;
          run_case(rng, {s[0], s[1], s[2], bool(form & 1), bool(form & 2), acc, t[0], t[1], off, 2 * off % 7, off + 2});
        }
}

TEST(a_larger_product_in_every_model_form) {
  Rng rng(62);
  // x W^T, dY W and dW += dY^T X of a 768 -> 2051 projection over 515 rows.
  run_case(rng, {515, 2051, 768, false, true, false, DType::F32, DType::F32, 0, 0, 0});
  run_case(rng, {515, 768, 2051, false, false, false, DType::BF16, DType::BF16, 0, 0, 0});
  run_case(rng, {2051, 768, 515, true, false, true, DType::BF16, DType::F32, 1, 3, 5});
  run_case(rng, {515, 1024, 1024, false, true, true, DType::F16, DType::F16, 2, 0, 1});  // PairRM's x W^T, accumulated
}

TEST(k_zero_writes_zeros_or_keeps_c) {
  auto gpu = backend_for(Device::CUDA);
  const std::vector<float> c0 = {1, 2, 3, 4, 5, 6};
  Dev a(gpu, 1, DType::F32), b(gpu, 1, DType::F32), zero(gpu, 6, DType::F32, 1), keep(gpu, c0, DType::F32);
  gpu->matmul(Tensor(a.data(), DType::F32, 0), Tensor(b.data(), DType::F32, 0), zero.t(), 2, 3, 0, false, false, false);
  gpu->matmul(Tensor(a.data(), DType::F32, 0), Tensor(b.data(), DType::F32, 0), keep.t(), 2, 3, 0, false, false, true);
  gpu->synchronize();
  CHECK(zero.get<float>() == std::vector<float>(6, 0.f));
  CHECK(keep.get<float>() == c0);
}

TEST(bad_types_and_sizes_say_what_the_cpu_says) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  for (auto& be : {cpu, gpu}) {
    Dev a(be, 5, DType::F32), b(be, 6, DType::F32), c(be, 4, DType::F32);
    CHECK_THROWS_WITH(be->matmul(a.t(), b.t(), c.t(), 2, 2, 3, false, false, false), "matmul: A has 5 elements, needs 6");
    CHECK_THROWS_WITH(be->matmul(b.t(), a.t(), c.t(), 2, 2, 3, false, false, false), "matmul: B has 5 elements, needs 6");
    CHECK_THROWS_WITH(be->matmul(b.t(), b.t(), Tensor(c.data(), DType::F32, 3), 2, 2, 3, false, false, false),
                      "matmul: C has 3 elements, needs 4");
  }
  Dev a(gpu, 6, DType::F32), b16(gpu, 6, DType::BF16), c16(gpu, 4, DType::BF16), d(gpu, 6, DType::F64);
  CHECK_THROWS_WITH(gpu->matmul(a.t(), b16.t(), c16.t(), 2, 2, 3, false, false, false), "matmul: B must be F32 (got BF16)");
  CHECK_THROWS_WITH(gpu->matmul(a.t(), a.t(), c16.t(), 2, 2, 3, false, false, false), "matmul: C must be F32 (got BF16)");
  Dev c64(gpu, 4, DType::F64);
  CHECK_THROWS_WITH(gpu->matmul(b16.t(), b16.t(), c64.t(), 2, 2, 3, false, false, false), "matmul: C must be F32 or BF16 (got F64)");
  CHECK_THROWS_WITH(gpu->matmul(d.t(), d.t(), d.t(), 2, 2, 3, false, false, false),
                    "matmul: the CUDA backend computes in F32, BF16 or F16 (got F64)");
}

#ifdef SPPO_CUDA_EMULATED
// cuBLASLt answers NOT_SUPPORTED when no algorithm fits the shapes and alignments (the emulator's
// SPPO_EMU_CUBLASLT_NO_ALGO=1 does the same): the error names the product, not a bare status.
TEST(a_product_cublaslt_has_no_algorithm_for_is_named) {
  auto gpu = backend_for(Device::CUDA);
  Dev a(gpu, 7 * 11, DType::F32), b(gpu, 11 * 13, DType::F32), c(gpu, 7 * 13, DType::F32);
  setenv("SPPO_EMU_CUBLASLT_NO_ALGO", "1", 1);
  CHECK_THROWS_WITH(gpu->matmul(a.t(), b.t(), c.t(), 7, 13, 11, false, false, false),
                    "cuBLASLt has no algorithm for matmul M = 7, N = 13, K = 11 (F32 inputs, F32 output");
  unsetenv("SPPO_EMU_CUBLASLT_NO_ALGO");
  gpu->matmul(a.t(), b.t(), c.t(), 7, 13, 11, false, false, false);  // the plan was not kept
  gpu->synchronize();
}
#endif

#endif

TEST_MAIN_CUDA()
