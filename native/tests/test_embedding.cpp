// The embedding op (kernels/embedding.h) against a float64 reference written here: the lookup with
// padding rows (ids < 0), the backward's sums (against finite differences of the reference and,
// for the determinism contract, bitwise against sums in increasing row order), accumulation into
// an existing gradient, and the errors for bad ids and sizes. Outputs start as NaN. In the bf16
// mode (through the CPU backend's emulation) dtable may be BF16, the bf16 gradient arena: each
// row's fp32 sum rounded once, within half a bf16 ulp of the float64 sum.
#include <algorithm>
#include <array>
#include <cstdio>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "kernels/embedding.h"
#include "op_testing.h"

using namespace sppo_test;

namespace {

struct Lookup {
  int64_t V, H, n;
  std::vector<int32_t> ids;
};

// Ids in [-1, V) with repeats (so backward sums several rows into one), the first and last ids
// and a padding row whenever there is room.
Lookup make_lookup(Rng& rng, int64_t V, int64_t H, int64_t n) {
  Lookup c{V, H, n, std::vector<int32_t>(n)};
  for (auto& id : c.ids) id = static_cast<int32_t>(rng.integer(-1, V - 1));
  if (n > 0) c.ids[0] = static_cast<int32_t>(V - 1);
  if (n > 1) c.ids[1] = 0;
  if (n > 2) c.ids[n - 1] = -1 - static_cast<int32_t>(rng.integer(0, 5));  // any negative id pads
  if (n > 3) c.ids[2] = c.ids[0];
  return c;
}

std::vector<double> ref_forward(const std::vector<double>& table, const Lookup& c) {
  std::vector<double> out(c.n * c.H, 0.0);
  for (int64_t r = 0; r < c.n; ++r)
    if (c.ids[r] >= 0)
      for (int64_t j = 0; j < c.H; ++j) out[r * c.H + j] = table[c.ids[r] * c.H + j];
  return out;
}

const int64_t kShapes[][3] = {{1, 1, 1}, {5, 3, 7}, {17, 13, 40}, {300, 130, 257}, {1000, 70, 3}};

template <typename T>
void check_forward(uint64_t salt) {
  Rng rng(salt);
  for (auto& s : kShapes) {
    const Lookup c = make_lookup(rng, s[0], s[1], s[2]);
    auto table = randn<T>(rng, c.V * c.H);
    auto out = poisoned<T>(c.n * c.H);
    sppo::cpu::embedding_forward(table.data(), c.V, c.H, c.ids.data(), c.n, out.data());
    CHECK_NEAR_ALL("out", out, ref_forward(to_f64(table), c), 0.0);  // a copy: exact
  }
}

template <typename T>
void check_backward(uint64_t salt) {
  Rng rng(salt);
  for (auto& s : kShapes) {
    const Lookup c = make_lookup(rng, s[0], s[1], s[2]);
    const auto dout = randn<T>(rng, c.n * c.H), dtable0 = randn<T>(rng, c.V * c.H);
    auto dtable = dtable0;  // backward adds into the gradient it is given
    sppo::cpu::embedding_backward(dout.data(), c.ids.data(), c.n, c.V, c.H, dtable.data());
    // float64 sums, and T sums in increasing r: the contract's order, so those match bitwise.
    std::vector<double> want = to_f64(dtable0);
    std::vector<T> ordered = dtable0;
    for (int64_t r = 0; r < c.n; ++r)
      if (c.ids[r] >= 0)
        for (int64_t j = 0; j < c.H; ++j) {
          want[c.ids[r] * c.H + j] += double(dout[r * c.H + j]);
          ordered[c.ids[r] * c.H + j] += dout[r * c.H + j];
        }
    CHECK_NEAR_ALL("dtable", dtable, want, ulps<T>(4 * (c.n + 1)));
    CHECK(dtable == ordered);
  }
}

}  // namespace

TEST(forward_copies_rows_and_zeroes_padding_in_float) { check_forward<float>(101); }
TEST(forward_copies_rows_and_zeroes_padding_in_double) { check_forward<double>(102); }
TEST(backward_adds_rows_in_order_in_float) { check_backward<float>(103); }
TEST(backward_adds_rows_in_order_in_double) { check_backward<double>(104); }

TEST(backward_is_the_gradient_of_the_reference_lookup) {
  Rng rng(105);
  const Lookup c = make_lookup(rng, 9, 5, 12);
  const auto table = randn<double>(rng, c.V * c.H), dout = randn<double>(rng, c.n * c.H);
  // f(table) = <dout, lookup(table)>
  auto f = [&](const std::vector<double>& t) { return dot(dout, ref_forward(t, c)); };
  const auto fd = numeric_grad(f, table);
  std::vector<double> dtable(c.V * c.H, 0.0);
  sppo::cpu::embedding_backward(dout.data(), c.ids.data(), c.n, c.V, c.H, dtable.data());
  CHECK_NEAR_ALL("dtable", dtable, fd, 1e-8);
}

TEST(backward_of_many_rows_does_not_depend_on_the_thread_count) {
#ifdef _OPENMP
  Rng rng(106);
  const Lookup c = make_lookup(rng, 50, 1000, 3000);  // big enough to run in parallel
  const auto dout = randn<float>(rng, c.n * c.H);
  std::vector<float> one(c.V * c.H, 0.f), two(c.V * c.H, 0.f);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  sppo::cpu::embedding_backward(dout.data(), c.ids.data(), c.n, c.V, c.H, one.data());
  omp_set_num_threads(std::max(2, saved));
  sppo::cpu::embedding_backward(dout.data(), c.ids.data(), c.n, c.V, c.H, two.data());
  omp_set_num_threads(saved);
  CHECK(one == two);
#else
  std::printf("  skipped: built without OpenMP, so there is one thread only\n");
#endif
}

// BF16 dout into a BF16 dtable holding earlier gradients, ids repeated many times (a row's many
// additions must round once, not per row) and padding rows.
TEST(backward_into_a_bf16_table_rounds_each_rows_fp32_sum_once) {
  Rng rng(105);
  auto be = cpu_backend();
  auto t16 = [](std::vector<uint16_t>& v) { return sppo::Tensor(v.data(), sppo::DType::BF16, static_cast<int64_t>(v.size())); };
  for (auto s : {std::array<int64_t, 3>{1, 1, 1}, {7, 5, 40}, {30, 33, 500}}) {
    const int64_t V = s[0], H = s[1], n = s[2];
    const Lookup c = make_lookup(rng, V, H, n);
    std::vector<uint16_t> dout(static_cast<size_t>(n * H)), t0(static_cast<size_t>(V * H));
    for (auto& x : dout) x = sppo::f32_to_bf16(static_cast<float>(rng.normal()));
    for (auto& x : t0) x = sppo::f32_to_bf16(static_cast<float>(rng.normal(0, 4)));
    std::vector<int32_t> ids = c.ids;
    std::vector<uint16_t> t16v = t0;
    std::vector<float> t32(static_cast<size_t>(V * H));
    for (size_t i = 0; i < t0.size(); ++i) t32[i] = sppo::bf16_to_f32(t0[i]);
    be->embedding_backward(t16(dout), view(ids), n, V, H, t16(t16v));
    be->embedding_backward(t16(dout), view(ids), n, V, H, view(t32));
    int64_t not_once = 0, off = 0;
    std::vector<double> want(static_cast<size_t>(V * H)), mag(static_cast<size_t>(V * H));
    for (size_t i = 0; i < t0.size(); ++i) {
      not_once += t16v[i] != sppo::f32_to_bf16(t32[i]);
      want[i] = sppo::bf16_to_f32(t0[i]);
      mag[i] = std::fabs(want[i]);
    }
    for (int64_t r = 0; r < n; ++r)
      if (ids[r] >= 0)
        for (int64_t j = 0; j < H; ++j) {
          want[ids[r] * H + j] += sppo::bf16_to_f32(dout[r * H + j]);
          mag[ids[r] * H + j] += std::fabs(sppo::bf16_to_f32(dout[r * H + j]));
        }
    for (size_t i = 0; i < want.size(); ++i) {
      const double got = sppo::bf16_to_f32(t16v[i]);
      const double tol = 0x1p-8 * std::fabs(want[i]) + (1 + 0x1p-8) * ulps<float>(double(n) + 2) * mag[i];
      if (!(std::fabs(got - want[i]) <= tol) && ++off <= 3)
        std::printf("  dtable[%zu] = %.9g, expected %.9g (tolerance %.3g)\n", i, got, want[i], tol);
    }
    CHECK(not_once == 0);
    CHECK(off == 0);
  }
  std::vector<float> dof(4, 1.f);
  std::vector<int32_t> ids = {0, 1};
  std::vector<uint16_t> tb(4, 0);
  CHECK_THROWS_WITH(be->embedding_backward(view(dof), view(ids), 2, 2, 2, t16(tb)),
                    "embedding_backward: dtable must be F32 (got BF16)");
}

TEST(bad_ids_and_sizes_are_refused_naming_the_argument) {
  std::vector<float> table(4 * 3, 1.f), out(2 * 3), dtable(4 * 3, 0.f);
  std::vector<int32_t> ids = {1, 4};
  CHECK_THROWS_WITH(sppo::cpu::embedding_forward(table.data(), 4, 3, ids.data(), 2, out.data()),
                    "embedding_forward: ids[1] = 4 is outside the vocabulary [0, 4)");
  CHECK_THROWS_WITH(sppo::cpu::embedding_backward(out.data(), ids.data(), 2, 4, 3, dtable.data()),
                    "embedding_backward: ids[1] = 4");
  for (float x : dtable) CHECK(x == 0.f);  // refused before anything is written
  ids[1] = 2;
  auto be = cpu_backend();
  CHECK_THROWS_WITH(be->embedding_forward(view(table, 1), 4, 3, view(ids), 2, view(out)),
                    "embedding_forward: table has 11 elements, needs 12");
  CHECK_THROWS_WITH(be->embedding_forward(view(table), 4, 3, view(ids, 1), 2, view(out)), "embedding_forward: ids");
  CHECK_THROWS_WITH(be->embedding_forward(view(table), 4, 3, view(ids), 2, view(out, 1)), "embedding_forward: out");
  CHECK_THROWS_WITH(be->embedding_backward(view(out), view(ids), 2, 4, 3, view(dtable, 3)),
                    "embedding_backward: dtable");
  std::vector<double> wrong(6);
  CHECK_THROWS_WITH(be->embedding_forward(view(table), 4, 3, view(ids), 2, view(wrong)),
                    "embedding_forward: out must be F32");
  be->embedding_forward(view(table), 4, 3, view(ids), 2, view(out));  // the right sizes pass
  CHECK(out[0] == 1.f);
}

TEST_MAIN()
