// Row movement and per-sequence sums (kernels/rows.h) against references written here: gathers
// (repeats allowed) and scatter-adds (distinct rows, into what dst holds) exactly; segment sums
// in float64 in increasing index (so bitwise the contract's value), empty segments 0; expansion
// with a scale; indices outside their range, repeated scatter rows and short tensors refused by
// name. Outputs start as NaN.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "kernels/rows.h"
#include "op_testing.h"

using namespace sppo_test;

namespace {

const int64_t kShapes[][3] = {{1, 1, 1}, {5, 3, 7}, {40, 17, 13}, {300, 1000, 130}};  // src rows, n, H

template <typename T>
void check_gather(uint64_t salt) {
  Rng rng(salt);
  for (auto& sh : kShapes) {
    const int64_t rows = sh[0], n = sh[1], H = sh[2];
    const auto src = randn<T>(rng, rows * H);
    std::vector<int32_t> idx(n);
    for (auto& i : idx) i = static_cast<int32_t>(rng.integer(0, rows - 1));
    idx[0] = static_cast<int32_t>(rows - 1);
    auto dst = poisoned<T>(n * H);
    sppo::cpu::gather_rows(src.data(), rows, idx.data(), n, H, dst.data());
    std::vector<double> want(n * H);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < H; ++j) want[i * H + j] = src[idx[i] * H + j];
    CHECK_NEAR_ALL("dst", dst, want, 0.0);
  }
}

template <typename T>
void check_scatter_add(uint64_t salt) {
  Rng rng(salt);
  for (auto& sh : kShapes) {
    const int64_t rows = std::max(sh[0], sh[1]), n = sh[1], H = sh[2];
    std::vector<int32_t> all(rows);
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng.gen);
    const std::vector<int32_t> idx(all.begin(), all.begin() + n);
    const auto src = randn<T>(rng, n * H), dst0 = randn<T>(rng, rows * H);
    auto dst = dst0;
    sppo::cpu::scatter_add_rows(src.data(), idx.data(), n, H, rows, dst.data());
    // One addition per element: float64 then rounded to T is T's own correctly rounded sum.
    std::vector<double> want = to_f64(dst0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < H; ++j) want[idx[i] * H + j] = double(T(want[idx[i] * H + j] + double(src[i * H + j])));
    CHECK_NEAR_ALL("dst", dst, want, 0.0);
  }
}

template <typename T>
void check_segments(uint64_t salt) {
  Rng rng(salt);
  for (int64_t n : {1, 9, 1000, 70001})
    for (int64_t S : {1, 3, 64}) {
      const auto x = randn<T>(rng, n, 50.0);
      std::vector<int32_t> seg(n);
      for (auto& s : seg) s = static_cast<int32_t>(rng.integer(0, S - 1));
      if (S > 2) std::replace(seg.begin(), seg.end(), int32_t(1), int32_t(0));  // an empty segment
      auto out = poisoned<T>(S);
      sppo::cpu::segment_sum(x.data(), seg.data(), n, S, out.data());
      std::vector<double> acc(S, 0.0);
      for (int64_t i = 0; i < n; ++i) acc[seg[i]] += double(x[i]);
      std::vector<double> want(S);
      for (int64_t s = 0; s < S; ++s) want[s] = double(T(acc[s]));
      CHECK_NEAR_ALL("segment sums", out, want, 0.0);
      if (S > 2) CHECK(out[1] == 0);
      const double scale = rng.uniform(-2, 2);
      const auto y = randn<T>(rng, S);
      auto ex = poisoned<T>(n);
      sppo::cpu::expand_segments(y.data(), seg.data(), n, S, scale, ex.data());
      std::vector<double> want_ex(n);
      for (int64_t i = 0; i < n; ++i) want_ex[i] = double(T(double(y[seg[i]]) * scale));
      CHECK_NEAR_ALL("expanded", ex, want_ex, 0.0);
    }
}

}  // namespace

TEST(gather_copies_the_indexed_rows_in_float) { check_gather<float>(161); }
TEST(gather_copies_the_indexed_rows_in_double) { check_gather<double>(162); }
TEST(scatter_adds_into_distinct_rows_in_float) { check_scatter_add<float>(163); }
TEST(scatter_adds_into_distinct_rows_in_double) { check_scatter_add<double>(164); }
TEST(segment_sums_and_expansion_in_float) { check_segments<float>(165); }
TEST(segment_sums_and_expansion_in_double) { check_segments<double>(166); }

TEST(bad_indices_and_sizes_are_refused_naming_the_argument) {
  std::vector<float> src(4 * 3, 1.f), dst(2 * 3), out(2), x(5, 1.f);
  std::vector<int32_t> idx = {1, 4};
  CHECK_THROWS_WITH(sppo::cpu::gather_rows(src.data(), 4, idx.data(), 2, 3, dst.data()),
                    "gather_rows: idx[1] = 4 is outside [0, 4)");
  idx[1] = -1;
  CHECK_THROWS_WITH(sppo::cpu::gather_rows(src.data(), 4, idx.data(), 2, 3, dst.data()), "gather_rows: idx[1] = -1");
  CHECK_THROWS_WITH(sppo::cpu::scatter_add_rows(dst.data(), idx.data(), 2, 3, 4, src.data()),
                    "scatter_add_rows: idx[1] = -1");
  idx[1] = 1;
  const auto before = src;
  CHECK_THROWS_WITH(sppo::cpu::scatter_add_rows(dst.data(), idx.data(), 2, 3, 4, src.data()),
                    "scatter_add_rows: idx[1] = 1 repeats");
  CHECK(src == before);  // refused before anything is added
  std::vector<int32_t> seg = {0, 1, 2, 0, 1};
  CHECK_THROWS_WITH(sppo::cpu::segment_sum(x.data(), seg.data(), 5, 2, out.data()),
                    "segment_sum: seg[2] = 2 is outside [0, 2)");
  CHECK_THROWS_WITH(sppo::cpu::expand_segments(out.data(), seg.data(), 5, 2, 1.0, x.data()), "expand_segments: seg[2]");
  seg[2] = 1;
  auto be = cpu_backend();
  idx = {0, 3};
  CHECK_THROWS_WITH(be->gather_rows(view(src, 1), 4, view(idx), 2, 3, view(dst)),
                    "gather_rows: src has 11 elements, needs 12");
  CHECK_THROWS_WITH(be->gather_rows(view(src), 4, view(idx, 1), 2, 3, view(dst)), "gather_rows: idx");
  CHECK_THROWS_WITH(be->gather_rows(view(src), 4, view(idx), 2, 3, view(dst, 1)), "gather_rows: dst");
  CHECK_THROWS_WITH(be->scatter_add_rows(view(dst), view(idx), 2, 3, 4, view(src, 1)), "scatter_add_rows: dst");
  CHECK_THROWS_WITH(be->segment_sum(view(x, 1), view(seg), 5, 2, view(out)), "segment_sum: x");
  CHECK_THROWS_WITH(be->segment_sum(view(x), view(seg), 5, 2, view(out, 1)), "segment_sum: out");
  CHECK_THROWS_WITH(be->expand_segments(view(out, 1), view(seg), 5, 2, 1.0, view(x)), "expand_segments: x");
  CHECK_THROWS_WITH(be->expand_segments(view(out), view(seg, 1), 5, 2, 1.0, view(x)), "expand_segments: seg");
  be->gather_rows(view(src), 4, view(idx), 2, 3, view(dst));
  CHECK(dst[5] == 1.f);
}

TEST_MAIN()
