// The CPU model's matrix products against naive float64 sums, on shapes that hit partial tiles,
// lane tails and several K blocks, with and without accumulation.
#include <cmath>
#include <vector>

#include "model/cpu/matmul.h"
#include "testing.h"

using namespace sppo::cpu_model;

namespace {

std::vector<float> randn(sppo_test::Rng& rng, int64_t n) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

// |got - want| within fp32 rounding of a K-term sum of O(1) products.
void check_all(const std::vector<float>& got, const std::vector<double>& want, int64_t K) {
  const double tol = 2e-6 * std::sqrt(double(K)) * 8;
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= tol * (1 + std::fabs(want[i])))) ++bad;
  if (bad) std::printf("  %d of %zu elements off (K=%lld)\n", bad, got.size(), (long long)K);
  CHECK(bad == 0);
}

}  // namespace

TEST(nt_nn_tn_products_match_float64_sums) {
  sppo_test::Rng rng(41);
  const int64_t shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {33, 65, 17}, {70, 130, 1100}, {2, 300, 513}};
  for (auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    for (bool acc : {false, true}) {
      // nt: C[M,N] = A[M,K] B[N,K]^T
      auto A = randn(rng, M * K), B = randn(rng, N * K), C0 = randn(rng, M * N);
      auto C = C0;
      matmul_nt(A.data(), B.data(), C.data(), M, N, K, acc);
      std::vector<double> want(M * N);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double v = acc ? C0[i * N + j] : 0.0;
          for (int64_t k = 0; k < K; ++k) v += double(A[i * K + k]) * B[j * K + k];
          want[i * N + j] = v;
        }
      check_all(C, want, K);
      // nn: C[M,N] = A[M,K] B[K,N]
      auto Bk = randn(rng, K * N);
      C = C0;
      matmul_nn(A.data(), Bk.data(), C.data(), M, N, K, acc);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double v = acc ? C0[i * N + j] : 0.0;
          for (int64_t k = 0; k < K; ++k) v += double(A[i * K + k]) * Bk[k * N + j];
          want[i * N + j] = v;
        }
      check_all(C, want, K);
    }
    // tn: C[N,K] += A[M,N]^T B[M,K]
    auto A = randn(rng, M * N), B = randn(rng, M * K), C0 = randn(rng, N * K);
    auto C = C0;
    matmul_tn_acc(A.data(), B.data(), C.data(), M, N, K);
    std::vector<double> want(N * K);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        double v = C0[n * K + k];
        for (int64_t m = 0; m < M; ++m) v += double(A[m * N + n]) * B[m * K + k];
        want[n * K + k] = v;
      }
    check_all(C, want, M);
  }
}

TEST(a_rows_result_does_not_depend_on_the_other_rows) {
  sppo_test::Rng rng(42);
  const int64_t M = 37, N = 90, K = 600;
  auto A = randn(rng, M * K), B = randn(rng, N * K);
  std::vector<float> all(M * N), one(N);
  matmul_nt(A.data(), B.data(), all.data(), M, N, K, false);
  for (int64_t i : {int64_t(0), int64_t(17), M - 1}) {
    matmul_nt(A.data() + i * K, B.data(), one.data(), 1, N, K, false);
    for (int64_t j = 0; j < N; ++j) CHECK(one[j] == all[i * N + j]);  // bitwise
  }
}

TEST_MAIN()
