// Paged-cache attention (kernels/attention_decode.h): kv_write puts rows at their slots and
// nothing else, and attention_decode over random block tables (shuffled physical blocks, a
// prompt's full blocks shared by a second sequence, slack entries that must not be read) gives
// bitwise attention_forward's rows, for float on the AVX2 path (head_dim 8, 16) and off it
// (head_dim 4), and for double; both also against the float64 reference. The pool starts as
// NaN, so a read of a slot nobody wrote shows. Bad tables, lengths, slots and sizes are refused
// by name.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "attention_reference.h"
#include "kernels/attention.h"
#include "kernels/attention_decode.h"
#include "op_testing.h"

using namespace sppo_test;
using sppo::AttnShape;
using sppo::PagedShape;

namespace {

template <typename T>
bool is_nan_row(const T* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isnan(p[i])) return false;
  return true;
}

// A batch of B right-padded sequences of lengths L[b] and its paged cache: sequence 1 repeats
// sequence 0's first `shared` tokens and reads those full blocks from sequence 0's table.
template <typename T>
struct Paged {
  AttnShape s;
  int64_t bs, num_blocks, stride;
  std::vector<int64_t> L;
  std::vector<T> q, k, v;
  std::vector<uint8_t> mask;
  std::vector<int32_t> tables;  // row perm[b] is sequence b's table
  std::vector<int32_t> perm;
  std::vector<T> k_pool, v_pool;
};

template <typename T>
Paged<T> make_paged(Rng& rng, const AttnShape& s, int64_t bs) {
  Paged<T> p;
  p.s = s;
  p.bs = bs;
  const int64_t qw = s.nh * s.hd, kw = s.nkv * s.hd;
  p.q = randn<T>(rng, s.B * s.T * qw);
  p.k = randn<T>(rng, s.B * s.T * kw);
  p.v = randn<T>(rng, s.B * s.T * kw);
  p.mask.assign(s.B * s.T, 0);
  for (int64_t b = 0; b < s.B; ++b) {
    p.L.push_back(b == 0 ? s.T : rng.integer(1, s.T));
    for (int64_t t = 0; t < p.L[b]; ++t) p.mask[b * s.T + t] = 1;
  }
  // Sequence 1 shares sequence 0's prefix (its first full blocks).
  const int64_t shared_blocks = s.B > 1 ? std::min(p.L[0], p.L[1]) / bs : 0;
  if (shared_blocks > 0) {
    std::copy(p.k.begin(), p.k.begin() + shared_blocks * bs * kw, p.k.begin() + s.T * kw);
    std::copy(p.v.begin(), p.v.begin() + shared_blocks * bs * kw, p.v.begin() + s.T * kw);
  }
  // Physical blocks in random order, some spare; block tables with slack entries of garbage.
  int64_t needed = 0;
  for (int64_t b = 0; b < s.B; ++b) needed += (p.L[b] + bs - 1) / bs;
  p.num_blocks = needed + rng.integer(0, 3);
  std::vector<int32_t> free(p.num_blocks);
  std::iota(free.begin(), free.end(), 0);
  std::shuffle(free.begin(), free.end(), rng.gen);
  p.stride = (s.T + bs - 1) / bs + rng.integer(0, 2);
  p.tables.assign(s.B * p.stride, -7);
  p.perm.resize(s.B);
  std::iota(p.perm.begin(), p.perm.end(), 0);
  std::shuffle(p.perm.begin(), p.perm.end(), rng.gen);
  size_t next = 0;
  for (int64_t b = 0; b < s.B; ++b) {
    int32_t* tab = &p.tables[p.perm[b] * p.stride];
    for (int64_t i = 0; i * bs < p.L[b]; ++i)
      tab[i] = (b == 1 && i < shared_blocks) ? p.tables[p.perm[0] * p.stride + i] : free[next++];
  }
  // Every position written once through kv_write, in random order (shared blocks by sequence 0).
  std::vector<int32_t> slots;
  std::vector<T> kr, vr;
  std::vector<int64_t> order;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t t = (b == 1 ? shared_blocks * bs : 0); t < p.L[b]; ++t) order.push_back(b * s.T + t);
  std::shuffle(order.begin(), order.end(), rng.gen);
  for (int64_t row : order) {
    const int64_t b = row / s.T, t = row % s.T;
    slots.push_back(p.tables[p.perm[b] * p.stride + t / bs] * static_cast<int32_t>(bs) + static_cast<int32_t>(t % bs));
    kr.insert(kr.end(), p.k.begin() + row * kw, p.k.begin() + (row + 1) * kw);
    vr.insert(vr.end(), p.v.begin() + row * kw, p.v.begin() + (row + 1) * kw);
  }
  const int64_t pool_rows = p.num_blocks * bs;
  p.k_pool = poisoned<T>(pool_rows * kw);
  p.v_pool = poisoned<T>(pool_rows * kw);
  sppo::cpu::kv_write(kr.data(), vr.data(), slots.data(), static_cast<int64_t>(slots.size()), kw, pool_rows,
                      p.k_pool.data(), p.v_pool.data());
  return p;
}

// Every real (sequence, position) as one decode row, in random order, against the full forward.
template <typename T>
void check_decode_equals_forward(uint64_t salt) {
  Rng rng(salt);
  const AttnShape shapes[] = {attn_shape(3, 40, 4, 2, 4), attn_shape(3, 37, 4, 2, 8), attn_shape(2, 50, 2, 1, 16),
                              attn_shape(4, 9, 2, 2, 8), attn_shape(1, 1, 1, 1, 8)};
  for (const AttnShape& s : shapes)
    for (int64_t bs : {8, 16}) {
      const Paged<T> p = make_paged<T>(rng, s, bs);
      const int64_t qw = s.nh * s.hd;
      std::vector<T> out(s.B * s.T * qw), lse(s.B * s.T * s.nh);
      sppo::cpu::attention_forward(s, p.q.data(), p.k.data(), p.v.data(), p.mask.data(), out.data(), lse.data());
      std::vector<int64_t> rows;
      for (int64_t b = 0; b < s.B; ++b)
        for (int64_t t = 0; t < p.L[b]; ++t) rows.push_back(b * s.T + t);
      std::shuffle(rows.begin(), rows.end(), rng.gen);
      const int64_t R = static_cast<int64_t>(rows.size());
      std::vector<T> q(R * qw);
      std::vector<int32_t> table_rows(R), lengths(R);
      for (int64_t r = 0; r < R; ++r) {
        const int64_t b = rows[r] / s.T, t = rows[r] % s.T;
        std::copy(p.q.begin() + rows[r] * qw, p.q.begin() + (rows[r] + 1) * qw, q.begin() + r * qw);
        table_rows[r] = p.perm[b];
        lengths[r] = static_cast<int32_t>(t + 1);
      }
      const PagedShape ps{R, s.nh, s.nkv, s.hd, bs, p.num_blocks, p.stride, s.scale};
      auto got = poisoned<T>(R * qw);
      sppo::cpu::attention_decode(ps, q.data(), p.k_pool.data(), p.v_pool.data(), p.tables.data(), table_rows.data(),
                                  lengths.data(), got.data());
      int differ = 0;
      for (int64_t r = 0; r < R; ++r)
        if (std::memcmp(&got[r * qw], &out[rows[r] * qw], qw * sizeof(T)) != 0) ++differ;
      if (differ)
        std::printf("  %d of %lld rows differ from attention_forward (hd %lld, block %lld)\n", differ, (long long)R,
                    (long long)s.hd, (long long)bs);
      CHECK(differ == 0);
      // And the float64 reference, independently of the forward.
      const AttnRef want = attention_reference(s, to_f64(p.q), to_f64(p.k), to_f64(p.v), p.mask);
      std::vector<double> want_rows(R * qw);
      for (int64_t r = 0; r < R; ++r)
        std::copy(want.out.begin() + rows[r] * qw, want.out.begin() + (rows[r] + 1) * qw, want_rows.begin() + r * qw);
      CHECK_NEAR_ALL("out", got, want_rows, ulps<T>(4 * (s.hd + s.T) + 16));
    }
}

}  // namespace

TEST(decode_equals_the_full_forward_bitwise_in_float) { check_decode_equals_forward<float>(151); }
TEST(decode_equals_the_full_forward_bitwise_in_double) { check_decode_equals_forward<double>(152); }

TEST(kv_write_fills_its_slots_and_nothing_else) {
  Rng rng(153);
  for (int64_t kw : {1, 7, 64}) {
    const int64_t pool_rows = 48, R = rng.integer(1, 20);
    std::vector<int32_t> all(pool_rows);
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng.gen);
    const std::vector<int32_t> slots(all.begin(), all.begin() + R);
    const auto k = randn<float>(rng, R * kw), v = randn<float>(rng, R * kw);
    auto kp = poisoned<float>(pool_rows * kw), vp = poisoned<float>(pool_rows * kw);
    sppo::cpu::kv_write(k.data(), v.data(), slots.data(), R, kw, pool_rows, kp.data(), vp.data());
    std::vector<int> written(pool_rows, -1);
    for (int64_t r = 0; r < R; ++r) written[slots[r]] = static_cast<int>(r);
    for (int64_t row = 0; row < pool_rows; ++row) {
      if (written[row] < 0) {
        CHECK(is_nan_row(&kp[row * kw], kw) && is_nan_row(&vp[row * kw], kw));
        continue;
      }
      CHECK(std::memcmp(&kp[row * kw], &k[written[row] * kw], kw * 4) == 0);
      CHECK(std::memcmp(&vp[row * kw], &v[written[row] * kw], kw * 4) == 0);
    }
    // A later write to a slot replaces the row.
    const auto k2 = randn<float>(rng, kw), v2 = randn<float>(rng, kw);
    sppo::cpu::kv_write(k2.data(), v2.data(), slots.data(), 1, kw, pool_rows, kp.data(), vp.data());
    CHECK(std::memcmp(&kp[slots[0] * kw], k2.data(), kw * 4) == 0);
    CHECK(std::memcmp(&vp[slots[0] * kw], v2.data(), kw * 4) == 0);
  }
}

TEST(bad_tables_lengths_and_slots_are_refused_naming_the_argument) {
  const int64_t nh = 2, nkv = 1, hd = 8, bs = 8, blocks = 4, stride = 2, kw = nkv * hd;
  std::vector<float> q(2 * nh * hd, 0.f), kp(blocks * bs * kw, 0.f), vp(blocks * bs * kw, 0.f), out(2 * nh * hd);
  std::vector<int32_t> tables = {0, 1, 2, 3}, rows = {0, 1}, lengths = {9, 3};
  PagedShape ps{2, nh, nkv, hd, bs, blocks, stride, 0.3};
  auto decode = [&](const PagedShape& s) {
    sppo::cpu::attention_decode(s, q.data(), kp.data(), vp.data(), tables.data(), rows.data(), lengths.data(),
                                out.data());
  };
  decode(ps);  // valid
  PagedShape bad = ps;
  bad.block_size = 12;
  CHECK_THROWS_WITH(decode(bad), "attention_decode: block_size must be a positive multiple of 8 (got 12)");
  bad = ps;
  bad.nkv = 3;
  CHECK_THROWS_WITH(decode(bad), "attention_decode: nh (2) must be a multiple of nkv (3)");
  lengths[1] = 0;
  CHECK_THROWS_WITH(decode(ps), "attention_decode: lengths[1] = 0 is outside [1, 16]");
  lengths[1] = 17;
  CHECK_THROWS_WITH(decode(ps), "attention_decode: lengths[1] = 17");
  lengths[1] = 3;
  tables[1] = 4;  // row 0 reads two blocks
  CHECK_THROWS_WITH(decode(ps), "attention_decode: block 4 of row 0 is outside the pool of 4 blocks");
  tables[1] = -1;
  CHECK_THROWS_WITH(decode(ps), "attention_decode: block -1 of row 0");
  tables[1] = 1;
  rows[0] = -1;
  CHECK_THROWS_WITH(decode(ps), "attention_decode: table_rows[0] = -1 is negative");
  rows[0] = 0;
  std::vector<int32_t> slots = {3, 32};
  CHECK_THROWS_WITH(sppo::cpu::kv_write(q.data(), q.data(), slots.data(), 2, kw, blocks * bs, kp.data(), vp.data()),
                    "kv_write: slots[1] = 32 is outside the cache pool of 32 rows");
  slots[1] = -2;
  CHECK_THROWS_WITH(sppo::cpu::kv_write(q.data(), q.data(), slots.data(), 2, kw, blocks * bs, kp.data(), vp.data()),
                    "kv_write: slots[1] = -2");
  // Sizes, through the backend.
  auto be = cpu_backend();
  std::vector<int32_t> short_tables = {0, 1, 2};
  CHECK_THROWS_WITH(be->attention_decode(ps, view(q), view(kp), view(vp), view(short_tables), view(rows), view(lengths),
                                         view(out)),
                    "attention_decode: tables has 3 elements, needs 4");
  CHECK_THROWS_WITH(be->attention_decode(ps, view(q, 1), view(kp), view(vp), view(tables), view(rows), view(lengths),
                                         view(out)),
                    "attention_decode: q");
  CHECK_THROWS_WITH(be->attention_decode(ps, view(q), view(kp, 1), view(vp), view(tables), view(rows), view(lengths),
                                         view(out)),
                    "attention_decode: k_pool");
  CHECK_THROWS_WITH(be->attention_decode(ps, view(q), view(kp), view(vp), view(tables), view(rows), view(lengths, 1),
                                         view(out)),
                    "attention_decode: lengths");
  CHECK_THROWS_WITH(be->attention_decode(ps, view(q), view(kp), view(vp), view(tables), view(rows), view(lengths),
                                         view(out, 1)),
                    "attention_decode: out");
  // The block-table rows the decode reads are sized in 64 bits: table_rows = 2^31 - 1 needs 2^31
  // rows, not the 0 that 32-bit arithmetic (INT32_MAX + 1 wrapping) would ask for.
  std::vector<int32_t> far_rows = {0, 2147483647};
  CHECK_THROWS_WITH(be->attention_decode(ps, view(q), view(kp), view(vp), view(tables), view(far_rows),
                                         view(lengths), view(out)),
                    "attention_decode: tables has 4 elements, needs 4294967296");
  far_rows = {2147483647, 2147483647};
  CHECK_THROWS_WITH(be->attention_decode(ps, view(q), view(kp), view(vp), view(tables), view(far_rows),
                                         view(lengths), view(out)),
                    "attention_decode: tables has 4 elements, needs 4294967296");
  CHECK_THROWS_WITH(be->kv_write(view(q), view(q), view(slots, 1), 2, kw, blocks * bs, view(kp), view(vp)),
                    "kv_write: slots");
  CHECK_THROWS_WITH(be->kv_write(view(q), view(q), view(slots), 2, kw, blocks * bs, view(kp, 1), view(vp)),
                    "kv_write: k_pool");
}

TEST_MAIN()
