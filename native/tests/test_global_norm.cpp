// Sum of squares for global-norm clipping (kernels/global_norm.h): float64 reference, accumulation
// into one scalar over several ranges, and independence from the thread count.
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "kernels/global_norm.h"
#include "testing.h"

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

TEST_MAIN()
