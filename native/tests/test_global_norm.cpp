// Sum of squares for global-norm clipping (kernels/global_norm.h): float64 reference, accumulation
// into one scalar over several ranges, the contract's fixed order (chunks of kNormChunk, bitwise),
// small and empty ranges, independence from the thread count, and sizes refused by name; bf16
// gradients (the bf16 gradient arena), widened exactly, directly and through the CPU backend.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "kernels/global_norm.h"
#include "op_testing.h"

TEST(sum_of_squares_matches_float64_and_accumulates_over_ranges) {
  sppo_test::Rng rng(33);
  const int64_t n = 3 * sppo::kNormChunk + 123;
  std::vector<float> g(n);
  double want = 0;
  for (auto& x : g) {
    x = static_cast<float>(rng.normal(0, 2));
    want += double(x) * x;
  }
  double acc = 0;
  sppo::cpu::sum_squares(g.data(), n, &acc);
  CHECK_CLOSE(acc, want, 0, 1e-12);
  double parts = 0;
  sppo::cpu::sum_squares(g.data(), 1000, &parts);
  sppo::cpu::sum_squares(g.data() + 1000, n - 1000, &parts);
  CHECK_CLOSE(parts, want, 0, 1e-12);
  std::vector<double> d(g.begin(), g.end());
  double dacc = 0;
  sppo::cpu::sum_squares(d.data(), n, &dacc);
  CHECK_CLOSE(dacc, want, 0, 1e-12);
}

TEST(sum_of_squares_of_bf16_gradients_widens_them_exactly) {
  sppo_test::Rng rng(37);
  const int64_t n = 2 * sppo::kNormChunk + 77;
  std::vector<uint16_t> g(n);
  std::vector<float> wide(n);
  double want = 0;
  for (int64_t i = 0; i < n; ++i) {
    g[i] = sppo::f32_to_bf16(static_cast<float>(rng.normal(0, 3)));
    wide[i] = sppo::bf16_to_f32(g[i]);
    want += double(wide[i]) * wide[i];
  }
  double acc = 0.25, acc32 = 0.25;
  sppo::cpu::sum_squares(g.data(), n, &acc);
  sppo::cpu::sum_squares(wide.data(), n, &acc32);
  CHECK_CLOSE(acc, want + 0.25, 0, 1e-12);
  CHECK(acc == acc32);  // the same double sums as over the widened fp32 values, bit for bit
  auto be = sppo_test::cpu_backend();
  std::vector<double> ss = {0.25};
  be->sum_squares(sppo::Tensor(g.data(), sppo::DType::BF16, n), n, sppo_test::view(ss));
  CHECK(ss[0] == acc);
  CHECK_THROWS_WITH(be->sum_squares(sppo::Tensor(g.data(), sppo::DType::BF16, n - 1), n, sppo_test::view(ss)),
                    "sum_squares: g has");
}

TEST(sum_of_squares_does_not_depend_on_the_thread_count) {
#ifdef _OPENMP
  sppo_test::Rng rng(34);
  std::vector<float> g(10 * sppo::kNormChunk + 7);
  for (auto& x : g) x = static_cast<float>(rng.normal());
  const int saved = omp_get_max_threads();
  double a = 0, b = 0;
  omp_set_num_threads(1);
  sppo::cpu::sum_squares(g.data(), static_cast<int64_t>(g.size()), &a);
  omp_set_num_threads(std::max(2, saved));
  sppo::cpu::sum_squares(g.data(), static_cast<int64_t>(g.size()), &b);
  omp_set_num_threads(saved);
  CHECK(a == b);
#else
  std::printf("  skipped: built without OpenMP, so there is one thread only\n");
#endif
}

// The contract's order, written out: each chunk summed in index order, partials in chunk order.
template <typename T>
void check_order(uint64_t salt) {
  sppo_test::Rng rng(salt);
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(7), sppo::kNormChunk - 1, sppo::kNormChunk + 1,
                    5 * sppo::kNormChunk + 333}) {
    const auto g = sppo_test::randn<T>(rng, n, 3.0);
    const double start = rng.normal();
    double want = start;
    for (int64_t c0 = 0; c0 < n; c0 += sppo::kNormChunk) {
      double part = 0;
      for (int64_t i = c0; i < std::min(n, c0 + sppo::kNormChunk); ++i) part += double(g[i]) * double(g[i]);
      want += part;
    }
    double acc = start;
    sppo::cpu::sum_squares(g.data(), n, &acc);
    CHECK(acc == want);
  }
}

TEST(sum_of_squares_follows_the_contracts_order_in_float) { check_order<float>(35); }
TEST(sum_of_squares_follows_the_contracts_order_in_double) { check_order<double>(36); }

TEST(sizes_are_checked_naming_the_argument) {
  auto be = sppo_test::cpu_backend();
  std::vector<float> g(5, 2.f);
  std::vector<double> acc = {1.0};
  std::vector<float> acc32 = {1.f};
  CHECK_THROWS_WITH(be->sum_squares(sppo_test::view(g, 1), 5, sppo_test::view(acc)),
                    "sum_squares: g has 4 elements, needs 5");
  CHECK_THROWS_WITH(be->sum_squares(sppo_test::view(g), 5, sppo_test::view(acc32)), "sum_squares: acc must be F64");
  CHECK_THROWS_WITH(be->sum_squares(sppo_test::view(g), 5, sppo_test::view(acc, 1)), "sum_squares: acc");
  be->sum_squares(sppo_test::view(g), 5, sppo_test::view(acc));
  CHECK(acc[0] == 21.0);
}

TEST_MAIN()
