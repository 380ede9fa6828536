// CUDA paged-cache attention (kernels/cuda/attention_decode.cu) against the CPU backend: kv_write
// fills exactly the CPU's slots with the same bits (untouched rows stay NaN); attention_decode over
// random block tables (shuffled physical blocks, a prompt's blocks shared by a second sequence,
// slack entries of garbage that must not be read, a pool that starts as NaN) gives the CPU's decode
// rows, for MHA, GQA with groups of 2, 3, 4 and 16 (two blocks per kv head), MQA; head dims 32, 64,
// 128, 256 and padded ones (24, 33, 40); block sizes 8, 16, 32; contexts past one 256-key chunk
// (up to 600: three chunks); F32 and BF16; outputs poisoned with NaN. A row gives the same bits on
// a rerun, alone and in a batch, and in the split launch (a few long rows: one block per chunk,
// folded by a second pass) and the walk launch (the same rows among enough short ones to fill the
// GPU: one block walks its chunks). Bad slots, lengths, table rows, block entries and table sizes
// are refused with the CPU's messages, the one the CPU names first. Sizes are small because
// gpu-check.sh runs this suite under compute-sanitizer too.
// Skips (exit 77) without a CUDA backend or device.
//
// Tolerances: as test_attention_cuda.cpp (the same arithmetic in another order): K * magnitude
// from attention_bounds, K = (8 * head_dim + 4 * T) * 2^-24; BF16 outputs 2^-8 relative more (and
// atol 2^-8 more).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#ifdef SPPO_WITH_CUDA
#include <cuda_runtime.h>
#endif

#include "attention_reference.h"
#include "backend/backend.h"
#include "backend_testing.h"
#include "cuda_compare.h"
#include "testing.h"

using namespace sppo;
using sppo_test::Dev;
using sppo_test::Rng;

#ifdef SPPO_WITH_CUDA
namespace {

std::vector<double> f64(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// B right-padded sequences of lengths L[b] (sequence 0 full) in a paged cache; sequence 1 shares
// sequence 0's full prefix blocks. The kv_write rows (every position once, shared blocks by
// sequence 0) are kept to fill both backends' pools.
struct Paged {
  AttnShape s;
  int64_t bs = 0, num_blocks = 0, stride = 0;
  std::vector<int64_t> L;
  std::vector<float> q, k, v;
  std::vector<uint8_t> mask;
  std::vector<int32_t> tables, perm;  // row perm[b] is sequence b's table
  std::vector<int32_t> slots;
  std::vector<float> kr, vr;
};

Paged make_paged(Rng& rng, const AttnShape& s, int64_t bs, bool bf16) {
  Paged p;
  p.s = s;
  p.bs = bs;
  const int64_t qw = s.nh * s.hd, kw = s.nkv * s.hd;
  auto input = [&](int64_t n) {
    std::vector<float> x = sppo_test::randn_f32(rng, n);
    return bf16 ? sppo_test::round_bf16(x) : x;
  };
  p.q = input(s.B * s.T * qw);
  p.k = input(s.B * s.T * kw);
  p.v = input(s.B * s.T * kw);
  p.mask.assign(static_cast<size_t>(s.B * s.T), 0);
  for (int64_t b = 0; b < s.B; ++b) {
    p.L.push_back(b == 0 ? s.T : rng.integer(1, s.T));
    for (int64_t t = 0; t < p.L[b]; ++t) p.mask[b * s.T + t] = 1;
  }
  const int64_t shared_blocks = s.B > 1 ? std::min(p.L[0], p.L[1]) / bs : 0;
  if (shared_blocks > 0) {
    std::copy(p.k.begin(), p.k.begin() + shared_blocks * bs * kw, p.k.begin() + s.T * kw);
    std::copy(p.v.begin(), p.v.begin() + shared_blocks * bs * kw, p.v.begin() + s.T * kw);
  }
  int64_t needed = 0;
  for (int64_t b = 0; b < s.B; ++b) needed += (p.L[b] + bs - 1) / bs;
  p.num_blocks = needed + rng.integer(0, 3);
  std::vector<int32_t> free(static_cast<size_t>(p.num_blocks));
  std::iota(free.begin(), free.end(), 0);
  std::shuffle(free.begin(), free.end(), rng.gen);
  p.stride = (s.T + bs - 1) / bs + rng.integer(0, 2);
  p.tables.assign(static_cast<size_t>(s.B * p.stride), -7);
  p.perm.resize(static_cast<size_t>(s.B));
  std::iota(p.perm.begin(), p.perm.end(), 0);
  std::shuffle(p.perm.begin(), p.perm.end(), rng.gen);
  size_t next = 0;
  for (int64_t b = 0; b < s.B; ++b) {
    int32_t* tab = &p.tables[p.perm[b] * p.stride];
    for (int64_t i = 0; i * bs < p.L[b]; ++i)
      tab[i] = (b == 1 && i < shared_blocks) ? p.tables[p.perm[0] * p.stride + i] : free[next++];
  }
  std::vector<int64_t> order;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t t = (b == 1 ? shared_blocks * bs : 0); t < p.L[b]; ++t) order.push_back(b * s.T + t);
  std::shuffle(order.begin(), order.end(), rng.gen);
  for (int64_t row : order) {
    const int64_t b = row / s.T, t = row % s.T;
    p.slots.push_back(p.tables[p.perm[b] * p.stride + t / bs] * static_cast<int32_t>(bs) + static_cast<int32_t>(t % bs));
    p.kr.insert(p.kr.end(), p.k.begin() + row * kw, p.k.begin() + (row + 1) * kw);
    p.vr.insert(p.vr.end(), p.v.begin() + row * kw, p.v.begin() + (row + 1) * kw);
  }
  return p;
}

// Decode rows: (sequence, position) pairs as forward rows b * T + t.
struct Rows {
  std::vector<int64_t> fwd;
  std::vector<float> q;
  std::vector<int32_t> table_rows, lengths;
};

Rows rows_of(const Paged& p, const std::vector<int64_t>& fwd_rows) {
  const int64_t qw = p.s.nh * p.s.hd;
  Rows r;
  r.fwd = fwd_rows;
  for (int64_t row : fwd_rows) {
    const int64_t b = row / p.s.T, t = row % p.s.T;
    r.q.insert(r.q.end(), p.q.begin() + row * qw, p.q.begin() + (row + 1) * qw);
    r.table_rows.push_back(p.perm[b]);
    r.lengths.push_back(static_cast<int32_t>(t + 1));
  }
  return r;
}

// The pools of one backend after kv_write of every position (poisoned with NaN first).
struct Pools {
  Dev k, v;
};
Pools fill_pools(const std::shared_ptr<Backend>& be, const Paged& p, DType dt, int64_t off) {
  const int64_t kw = p.s.nkv * p.s.hd, pool_rows = p.num_blocks * p.bs, R = static_cast<int64_t>(p.slots.size());
  Pools pools{Dev(be, pool_rows * kw, dt, off), Dev(be, pool_rows * kw, dt, off + 1)};
  Dev k = sppo_test::dev_as(be, p.kr, dt, off + 2), v = sppo_test::dev_as(be, p.vr, dt, off + 3);
  Dev slots(be, p.slots, DType::I32, off);
  be->kv_write(k.t(), v.t(), slots.t(), R, kw, pool_rows, pools.k.t(), pools.v.t());
  be->synchronize();
  return pools;
}

std::vector<float> decode(const std::shared_ptr<Backend>& be, const Paged& p, const Pools& pools, const Rows& rows,
                          DType dt, int64_t off) {
  const int64_t R = static_cast<int64_t>(rows.lengths.size()), qw = p.s.nh * p.s.hd;
  const PagedShape ps{R, p.s.nh, p.s.nkv, p.s.hd, p.bs, p.num_blocks, p.stride, p.s.scale};
  Dev q = sppo_test::dev_as(be, rows.q, dt, off), tables(be, p.tables, DType::I32, off + 1);
  Dev tr(be, rows.table_rows, DType::I32, off + 2), len(be, rows.lengths, DType::I32, off + 3);
  Dev out(be, R * qw, dt, off);
  be->attention_decode(ps, q.t(), pools.k.t(), pools.v.t(), tables.t(), tr.t(), len.t(), out.t());
  be->synchronize();
  return sppo_test::floats_of(out, dt);
}

// Decodes `fwd_rows` on both backends; checks the GPU's rows against the CPU's within the
// tolerance (from `bound`, the magnitudes of the full forward) and returns them.
std::vector<float> check_rows(const char* what, const Paged& p, const sppo_test::AttnBounds& bound, const Pools& cp,
                              const Pools& gp, const std::vector<int64_t>& fwd_rows, DType dt, int64_t off) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const AttnShape& s = p.s;
  const int64_t qw = s.nh * s.hd, R = static_cast<int64_t>(fwd_rows.size());
  const Rows rows = rows_of(p, fwd_rows);
  const std::vector<float> want = decode(cpu, p, cp, rows, DType::F32, 0);
  const std::vector<float> got = decode(gpu, p, gp, rows, dt, off);
  const double rtol = dt == DType::BF16 ? std::ldexp(1.0, -8) : 0.0;
  const int64_t hd_pad = s.hd <= 32 ? 32 : s.hd <= 64 ? 64 : s.hd <= 128 ? 128 : 256;
  const double K = double(8 * hd_pad + 4 * s.T) * std::ldexp(1.0, -24) * (1 + rtol);
  std::vector<double> tol(static_cast<size_t>(R * qw));
  for (int64_t r = 0; r < R; ++r)
    for (int64_t i = 0; i < qw; ++i) tol[r * qw + i] = K * bound.out[fwd_rows[r] * qw + i];
  sppo_test::expect_close(what, got, want, tol, rtol);
  return got;
}

std::string label(const char* what, const AttnShape& s, int64_t bs, DType dt, int64_t off) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s (B=%lld T=%lld heads %lld/%lld hd=%lld block %lld %s off=%lld)", what,
                (long long)s.B, (long long)s.T, (long long)s.nh, (long long)s.nkv, (long long)s.hd, (long long)bs,
                dtype_name(dt), (long long)off);
  return buf;
}

// kv_write must give the CPU's pools exactly (the same bits in the same rows, NaN elsewhere).
void check_pools(const char* what, const Pools& cp, const Pools& gp, DType dt) {
  for (int side = 0; side < 2; ++side) {
    const Dev& c = side ? cp.v : cp.k;
    const Dev& g = side ? gp.v : gp.k;
    const std::vector<float> cf = c.get<float>();
    bool same;
    if (dt == DType::BF16) {
      same = sppo_test::to_bf16(cf) == g.get<uint16_t>();
    } else {
      const std::vector<float> got = g.get<float>();
      same = got.size() == cf.size() && std::memcmp(got.data(), cf.data(), cf.size() * sizeof(float)) == 0;
    }
    if (!same) {
      std::printf("  %s: the %s pool differs from the CPU's\n", what, side ? "v" : "k");
      ++sppo_test::failures();
    }
  }
}

// The last position of every sequence and two more of each, shuffled.
std::vector<int64_t> some_rows(Rng& rng, const Paged& p) {
  std::vector<int64_t> rows;
  for (int64_t b = 0; b < p.s.B; ++b) {
    rows.push_back(b * p.s.T + p.L[b] - 1);
    for (int i = 0; i < 2; ++i) rows.push_back(b * p.s.T + rng.integer(0, p.L[b] - 1));
  }
  std::shuffle(rows.begin(), rows.end(), rng.gen);
  return rows;
}

void run_case(Rng& rng, const AttnShape& s, int64_t bs, DType dt, int64_t off) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const Paged p = make_paged(rng, s, bs, dt == DType::BF16);
  const int64_t qw = s.nh * s.hd;
  const Pools cp = fill_pools(cpu, p, DType::F32, 0), gp = fill_pools(gpu, p, dt, off);
  check_pools(label("kv_write", s, bs, dt, off).c_str(), cp, gp, dt);
  const std::vector<int64_t> rows = some_rows(rng, p);
  const sppo_test::AttnBounds bound = sppo_test::attention_bounds(s, f64(p.q), f64(p.k), f64(p.v), p.mask, {});
  const std::vector<float> got = check_rows(label("decode", s, bs, dt, off).c_str(), p, bound, cp, gp, rows, dt, off);
  // The same bits on a rerun, and for the first row on its own.
  sppo_test::expect_same_bits(label("rerun", s, bs, dt, off).c_str(), decode(gpu, p, gp, rows_of(p, rows), dt, off),
                              got);
  sppo_test::expect_same_bits(label("a row alone", s, bs, dt, off).c_str(),
                              decode(gpu, p, gp, rows_of(p, {rows[0]}), dt, off),
                              std::vector<float>(got.begin(), got.begin() + qw));
}

}  // namespace

// Contexts up to 300 keys: past one 256-key chunk, so these few rows take the split launch (one
// block per chunk and a second pass); tables up to 256 positions take the walk (one chunk).
TEST(kv_write_and_decode_match_the_cpu) {
  Rng rng(401);
  struct C {
    int64_t B, T, nh, nkv, hd, bs;
  };
  const C cases[] = {
      {3, 40, 4, 4, 32, 8},    {3, 300, 8, 2, 64, 16}, {2, 280, 4, 2, 128, 16}, {2, 60, 16, 1, 64, 8},
      {2, 270, 2, 1, 256, 32}, {3, 37, 6, 3, 40, 8},   {2, 65, 2, 2, 24, 16},   {2, 50, 4, 2, 33, 8},
      {1, 1, 1, 1, 64, 8},
  };
  int k = 0;
  for (const C& c : cases)
    for (DType dt : {DType::F32, DType::BF16}) {
      run_case(rng, sppo_test::attn_shape(c.B, c.T, c.nh, c.nkv, c.hd), c.bs, dt, k % 2 ? 1 : 0);
      ++k;
    }
}

// Long rows alone take the split launch; the same rows among enough short ones to fill the GPU
// (kDecodeSplitBelowPerSM blocks per SM) take the walk. Both must give the CPU's rows and the same
// bits as each other: a row depends on its own keys only.
TEST(the_walk_and_the_split_give_the_same_bits) {
  Rng rng(402);
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    std::printf("  cannot read the SM count\n");
    ++sppo_test::failures();
    return;
  }
  for (DType dt : {DType::F32, DType::BF16}) {
    const AttnShape s = sppo_test::attn_shape(3, 600, 4, 2, 32);  // 3 chunks of keys
    const int64_t bs = 16, qw = s.nh * s.hd, off = dt == DType::BF16 ? 1 : 0;
    auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
    const Paged p = make_paged(rng, s, bs, dt == DType::BF16);
    const Pools cp = fill_pools(cpu, p, DType::F32, 0), gp = fill_pools(gpu, p, dt, off);
    const sppo_test::AttnBounds bound = sppo_test::attention_bounds(s, f64(p.q), f64(p.k), f64(p.v), p.mask, {});
    std::vector<int64_t> rows = {p.L[0] - 1, 513, 300, s.T + p.L[1] - 1};  // (sequence 0 is full)
    const std::vector<float> alone =
        check_rows(label("split", s, bs, dt, off).c_str(), p, bound, cp, gp, rows, dt, off);
    const int64_t blocks_per_row = s.nkv * ((s.nh / s.nkv + cuda::kDecodeHeadsPerBlock - 1) / cuda::kDecodeHeadsPerBlock);
    while (static_cast<int64_t>(rows.size()) * blocks_per_row < int64_t{cuda::kDecodeSplitBelowPerSM} * sms + 8) {
      const int64_t b = rng.integer(0, s.B - 1);  // short rows: one tile of keys each
      rows.push_back(b * s.T + rng.integer(0, std::min<int64_t>(7, p.L[b] - 1)));
    }
    const std::vector<float> batch =
        check_rows(label("walk", s, bs, dt, off).c_str(), p, bound, cp, gp, rows, dt, off);
    sppo_test::expect_same_bits(label("walk vs split", s, bs, dt, off).c_str(),
                                std::vector<float>(batch.begin(), batch.begin() + 4 * qw), alone);
  }
}

// In the split launch, a row refused for its table row (its length is fine) gets no chunk from
// the first pass, so the second must leave its output as it was (not fold unwritten scratch into
// it); the other row is still computed. The output is filled with 7.25, not NaN, so that a fold of
// the emulator's NaN-filled scratch shows.
TEST(a_refused_row_of_the_split_launch_keeps_its_output) {
  auto gpu = backend_for(Device::CUDA);
  const int64_t nh = 2, nkv = 1, hd = 32, bs = 16, stride = 20, blocks = 2 * stride, kw = nkv * hd;
  const PagedShape ps{2, nh, nkv, hd, bs, blocks, stride, 0.3};  // 320 keys a row: two chunks
  Rng rng(404);
  std::vector<float> q(2 * nh * hd), pool(blocks * bs * kw);
  for (float& x : q) x = static_cast<float>(rng.uniform(-1, 1));
  for (float& x : pool) x = static_cast<float>(rng.uniform(-1, 1));
  std::vector<int32_t> tables(2 * stride);
  for (size_t i = 0; i < tables.size(); ++i) tables[i] = static_cast<int32_t>(i);
  Dev dq(gpu, q, DType::F32), kp(gpu, pool, DType::F32), vp(gpu, pool, DType::F32), t(gpu, tables, DType::I32);
  Dev r(gpu, std::vector<int32_t>{-1, 1}, DType::I32), l(gpu, std::vector<int32_t>{300, 300}, DType::I32);
  Dev out(gpu, std::vector<float>(2 * nh * hd, 7.25f), DType::F32);
  const std::string why = sppo_test::message_of([&] {
    gpu->attention_decode(ps, dq.t(), kp.t(), vp.t(), t.t(), r.t(), l.t(), out.t());
    gpu->synchronize();
  });
  CHECK(why.find("table_rows[0] = -1 is negative") != std::string::npos);
  const std::vector<float> got = out.get<float>();
  int64_t kept = 0, computed = 0;
  for (int64_t i = 0; i < nh * hd; ++i) kept += got[static_cast<size_t>(i)] == 7.25f;
  for (int64_t i = nh * hd; i < 2 * nh * hd; ++i)
    computed += std::isfinite(got[static_cast<size_t>(i)]) && got[static_cast<size_t>(i)] != 7.25f;
  CHECK(kept == nh * hd);
  CHECK(computed == nh * hd);
  if (kept != nh * hd) std::printf("  the refused row: %lld of %lld values kept\n", (long long)kept, (long long)(nh * hd));
}

TEST(bad_tables_lengths_and_slots_are_refused_like_the_cpu) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const int64_t nh = 2, nkv = 1, hd = 8, bs = 8, blocks = 4, stride = 2, kw = nkv * hd, pool_rows = blocks * bs;
  const PagedShape ps{2, nh, nkv, hd, bs, blocks, stride, 0.3};
  std::vector<float> q(2 * nh * hd, 0.5f), pool(pool_rows * kw, 0.25f);
  auto run = [&](const std::shared_ptr<Backend>& be, const PagedShape& s, const std::vector<int32_t>& tables,
                 const std::vector<int32_t>& rows, const std::vector<int32_t>& lengths) {
    return sppo_test::message_of([&] {
      Dev dq(be, q, DType::F32), kp(be, pool, DType::F32), vp(be, pool, DType::F32);
      Dev t(be, tables, DType::I32), r(be, rows, DType::I32), l(be, lengths, DType::I32);
      Dev out(be, 2 * nh * hd, DType::F32);
      be->attention_decode(s, dq.t(), kp.t(), vp.t(), t.t(), r.t(), l.t(), out.t());
      be->synchronize();
    });
  };
  auto same = [&](const char* what, const std::vector<int32_t>& tables, const std::vector<int32_t>& rows,
                  const std::vector<int32_t>& lengths, const PagedShape& s) {
    sppo_test::expect_same_error(what, run(cpu, s, tables, rows, lengths), run(gpu, s, tables, rows, lengths));
  };
  CHECK(run(gpu, ps, {0, 1, 2, 3}, {0, 1}, {9, 3}).empty());  // valid
  same("length 0", {0, 1, 2, 3}, {0, 1}, {9, 0}, ps);
  same("length past the table", {0, 1, 2, 3}, {0, 1}, {9, 17}, ps);
  same("block past the pool", {0, 4, 2, 3}, {0, 1}, {9, 3}, ps);
  same("negative block", {0, -1, 2, 3}, {0, 1}, {9, 3}, ps);
  same("negative table row", {0, 1, 2, 3}, {-1, 1}, {9, 3}, ps);
  same("row 0's block before row 1's length", {0, 4, 2, 3}, {0, 1}, {9, 0}, ps);
  same("row 0's length before its table row", {0, 1, 2, 3}, {-1, 1}, {0, 3}, ps);
  same("short tables", {0, 1, 2}, {0, 1}, {9, 3}, ps);
  same("a far table row", {0, 1, 2, 3}, {0, 2147483647}, {9, 3}, ps);
  same("tables before lengths", {0, 1, 2, 3}, {5, 1}, {0, 3}, ps);
  PagedShape bad = ps;
  bad.block_size = 12;
  same("block size", {0, 1, 2, 3}, {0, 1}, {9, 3}, bad);
  bad = ps;
  bad.nkv = 3;
  same("nh % nkv", {0, 1, 2, 3}, {0, 1}, {9, 3}, bad);

  auto write = [&](const std::shared_ptr<Backend>& be, const std::vector<int32_t>& slots, int64_t pool_n) {
    return sppo_test::message_of([&] {
      Dev k(be, q, DType::F32), v(be, q, DType::F32), sl(be, slots, DType::I32);
      Dev kp(be, pool_n, DType::F32), vp(be, pool_n, DType::F32);
      be->kv_write(k.t(), v.t(), sl.t(), 2, kw, pool_rows, kp.t(), vp.t());
      be->synchronize();
    });
  };
  CHECK(write(gpu, {3, 31}, pool_rows * kw).empty());
  for (const std::vector<int32_t>& slots : {std::vector<int32_t>{3, 32}, {3, -2}, {40, -1}})
    sppo_test::expect_same_error("kv_write slot", write(cpu, slots, pool_rows * kw), write(gpu, slots, pool_rows * kw));
  sppo_test::expect_same_error("kv_write short pool", write(cpu, {3, 4}, pool_rows * kw - 1),
                               write(gpu, {3, 4}, pool_rows * kw - 1));
  Dev k(gpu, q, DType::BF16), v(gpu, q, DType::F32), sl(gpu, std::vector<int32_t>{0, 1}, DType::I32);
  Dev kp(gpu, pool_rows * kw, DType::BF16), vp(gpu, pool_rows * kw, DType::BF16);
  CHECK_THROWS_WITH(gpu->kv_write(k.t(), v.t(), sl.t(), 2, kw, pool_rows, kp.t(), vp.t()),
                    "kv_write: v must be BF16 (got F32)");
}

#endif

TEST_MAIN_CUDA()
