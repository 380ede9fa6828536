// The CPU matrix product (kernels/matmul.h) against naive float64 sums, on shapes that hit partial
// micro-tiles, several K blocks and packed-block edges, for every transpose form, with and without
// accumulation; outputs are poisoned with NaN first. Then the summation-order contract: a row's
// result does not depend on the other rows, on the thread count, or on the SIMD kernel. Sizes the
// backend refuses name the argument.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <limits>
#include <vector>

#include "core/parallel.h"
#include "kernels/matmul.h"
#include "op_testing.h"

using sppo::cpu::matmul;
using sppo_test::randn;

namespace {

// C0 (when accumulating) + op(A) op(B) in float64, and each element's sum of |terms|.
struct Reference {
  std::vector<double> value, magnitude;
};

template <typename T>
Reference reference(const std::vector<T>& A, const std::vector<T>& B, const std::vector<T>& C0, int64_t M, int64_t N,
                    int64_t K, bool ta, bool tb, bool acc) {
  Reference r{std::vector<double>(M * N), std::vector<double>(M * N)};
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double v = acc ? double(C0[i * N + j]) : 0.0, m = std::fabs(v);
      for (int64_t k = 0; k < K; ++k) {
        const double t = double(ta ? A[k * M + i] : A[i * K + k]) * double(tb ? B[j * K + k] : B[k * N + j]);
        v += t;
        m += std::fabs(t);
      }
      r.value[i * N + j] = v;
      r.magnitude[i * N + j] = m;
    }
  return r;
}

// Any order of K + 1 additions in T (blocked, FMA or not) is within (K + 2) eps of the sum of
// |terms| (the classical bound for recursive summation): a bound that holds for every input,
// so the test cannot fail by chance, while an indexing error is off by the size of the terms.
template <typename T>
int count_bad(const std::vector<T>& got, const Reference& want, int64_t K) {
  const double eps = std::numeric_limits<T>::epsilon();
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(double(got[i]) - want.value[i]) <= (double(K) + 2) * eps * want.magnitude[i] + 1e-300)) ++bad;
  return bad;
}

template <typename T>
void check_shapes(uint64_t salt) {
  sppo_test::Rng rng(salt);
  // Edges of the 12x32 / 6x16 / 4x8 micro-tiles, the 256-wide K blocks and the 384-row A blocks.
  const int64_t shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {13, 33, 17}, {70, 130, 600}, {2, 300, 513}, {400, 65, 257}};
  for (auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    for (int form = 0; form < 4; ++form) {
      const bool ta = form & 1, tb = form & 2;
      for (bool acc : {false, true}) {
        auto A = randn<T>(rng, M * K), B = randn<T>(rng, N * K), C0 = randn<T>(rng, M * N);
        auto C = acc ? C0 : std::vector<T>(M * N, std::numeric_limits<T>::quiet_NaN());
        matmul(A.data(), B.data(), C.data(), M, N, K, ta, tb, acc);
        const int bad = count_bad(C, reference(A, B, C0, M, N, K, ta, tb, acc), K);
        if (bad)
          std::printf("  %d of %lld off: M=%lld N=%lld K=%lld ta=%d tb=%d acc=%d\n", bad, (long long)(M * N), (long long)M,
                      (long long)N, (long long)K, ta, tb, acc);
        CHECK(bad == 0);
      }
    }
  }
}

}  // namespace

TEST(every_form_matches_float64_sums_in_float) { check_shapes<float>(41); }
TEST(every_form_matches_float64_sums_in_double) { check_shapes<double>(43); }

TEST(k_zero_and_empty_shapes) {
  std::vector<float> C(6, 3.f);
  matmul<float>(nullptr, nullptr, C.data(), 2, 3, 0, false, false, true);
  CHECK(C[0] == 3.f);
  matmul<float>(nullptr, nullptr, C.data(), 2, 3, 0, false, false, false);
  CHECK(C[5] == 0.f);
  matmul<float>(nullptr, nullptr, C.data(), 0, 3, 5, false, false, false);  // nothing to do, nothing read
  CHECK_THROWS_WITH(matmul<float>(nullptr, nullptr, C.data(), -1, 3, 5, false, false, false), "negative size");
}

TEST(a_rows_result_does_not_depend_on_the_other_rows) {
  sppo_test::Rng rng(42);
  const int64_t M = 37, N = 90, K = 600;
  auto A = randn<float>(rng, M * K), B = randn<float>(rng, N * K);
  std::vector<float> all(M * N), one(N);
  matmul(A.data(), B.data(), all.data(), M, N, K, false, true, false);
  for (int64_t i : {int64_t(0), int64_t(17), M - 1}) {
    matmul(A.data() + i * K, B.data(), one.data(), 1, N, K, false, true, false);
    for (int64_t j = 0; j < N; ++j) CHECK(one[j] == all[i * N + j]);  // bitwise
  }
}

// The decoder's few rows take a path of their own (no packing of W; 8- or 16-lane row groups):
// its results must be the packed kernels' bits, for row counts on both sides of the lane widths.
TEST(few_rows_give_the_packed_kernels_bits) {
  sppo_test::Rng rng(46);
  const int64_t big = 100, N = 203, K = 777;  // 100 rows: the packed path; K spans several k blocks
  auto A = randn<float>(rng, big * K), B = randn<float>(rng, N * K), C0 = randn<float>(rng, big * N);
  for (bool acc : {false, true}) {
    std::vector<float> all = C0;
    matmul(A.data(), B.data(), all.data(), big, N, K, false, true, acc);
    for (int64_t m : {1, 3, 8, 9, 16, 17, 20, 33, 64}) {
      std::vector<float> few(C0.begin(), C0.begin() + m * N);
      matmul(A.data(), B.data(), few.data(), m, N, K, false, true, acc);
      int64_t bad = 0;
      for (int64_t x = 0; x < m * N; ++x) bad += few[x] != all[x];
      if (bad) std::printf("  m=%lld accumulate=%d: %lld of %lld differ\n", (long long)m, int(acc), (long long)bad, (long long)(m * N));
      CHECK(bad == 0);
    }
  }
}

TEST(results_do_not_depend_on_the_thread_count) {
#ifdef _OPENMP
  sppo_test::Rng rng(44);
  const int64_t M = 300, N = 200, K = 700;
  auto A = randn<float>(rng, M * K), B = randn<float>(rng, K * N);
  std::vector<float> one(M * N), two(M * N);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  matmul(A.data(), B.data(), one.data(), M, N, K, false, false, false);
  omp_set_num_threads(std::max(2, saved));
  matmul(A.data(), B.data(), two.data(), M, N, K, false, false, false);
  omp_set_num_threads(saved);
  CHECK(one == two);
#else
  std::printf("  skipped: built without OpenMP, so there is one thread only\n");
#endif
}

TEST(sizes_are_checked_naming_the_argument) {
  auto be = sppo_test::cpu_backend();
  const int64_t M = 3, N = 4, K = 5;
  std::vector<float> A(M * K, 1.f), B(K * N, 1.f), C(M * N, 0.f);
  using sppo_test::view;
  CHECK_THROWS_WITH(be->matmul(view(A, 1), view(B), view(C), M, N, K, false, false, false),
                    "matmul: A has 14 elements, needs 15");
  CHECK_THROWS_WITH(be->matmul(view(A), view(B, 1), view(C), M, N, K, false, true, false), "matmul: B");
  CHECK_THROWS_WITH(be->matmul(view(A), view(B), view(C, 1), M, N, K, true, false, true), "matmul: C");
  std::vector<double> Bd(K * N, 1.0);
  CHECK_THROWS_WITH(be->matmul(view(A), view(Bd), view(C), M, N, K, false, false, false), "matmul: B must be F32");
  std::vector<int32_t> Ci(M * N);
  CHECK_THROWS_WITH(be->matmul(view(A), view(B), view(Ci), M, N, K, false, false, false), "matmul: C must be F32 (got I32)");
  std::vector<int32_t> Ai(M * K);
  CHECK_THROWS_WITH(be->matmul(view(Ai), view(B), view(C), M, N, K, false, false, false),
                    "matmul: the CPU backend computes in F32, F64, BF16 or F16 (got I32)");
  be->matmul(view(A), view(B), view(C), M, N, K, false, false, false);
  CHECK(C[0] == 5.f);
}

// `test_matmul --checksum` prints a hash of the bits of many products (all forms, edge shapes,
// accumulate); CMake runs it under the AVX-512 and the AVX2 kernels (SPPO_SIMD=avx2) and with 1
// and 2 threads, and requires the same hash: the contract's bitwise agreement.
static int checksum() {
  sppo_test::Rng rng(0);
  rng.gen.seed(12345);  // fixed inputs: the hashes of two runs must be comparable
  uint64_t h = 1469598103934665603ull;
  for (int64_t M : {1, 5, 13, 64, 65, 400})
    for (int64_t N : {1, 17, 33, 100})
      for (int64_t K : {1, 17, 256, 300, 600})
        for (int f = 0; f < 4; ++f) {
          auto A = randn<float>(rng, M * K), B = randn<float>(rng, N * K), C = randn<float>(rng, M * N);
          matmul(A.data(), B.data(), C.data(), M, N, K, f & 1, f & 2, true);
          for (float x : C) {
            uint32_t u;
            std::memcpy(&u, &x, 4);
            h = (h ^ u) * 1099511628211ull;
          }
        }
  std::printf("%016llx\n", static_cast<unsigned long long>(h));
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--checksum") return checksum();
  return sppo_test::run_all();
}
