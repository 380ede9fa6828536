// CUDA disentangled attention (kernels/cuda/disentangled_attention.cu) against the CPU backend on
// fresh random packed batches: sequences of length 1 to past the bucket table, empty sequences
// between them, random (not monotone) bucket tables, every combination of the c2p and p2c terms,
// head widths below, at and above the kernel's block (8, 11, 64, 96, 128, 160), F32, BF16 and F16,
// tensors at unaligned offsets, outputs poisoned with NaN, PairRM's head shape (16 heads of 64,
// 512 buckets) and a bucket table long enough (max_len 12300) to need more than 48 KB of shared
// memory; a sequence gives the same bits alone and in a batch; bad layouts are deferred to
// synchronize() with the CPU's messages and nothing is computed from them; bad shapes are refused
// as on the CPU. Skips (exit 77) without a CUDA backend or device.
//
// Tolerances: both compute in fp32 with sums in other orders (the CPU through its matmul, the
// GPU per warp and per thread group), so outputs agree within 5e-5 (1 + |out|), the CPU suite's
// bound against float64 widened by the CPU's own error; BF16 outputs add their rounding: each side
// rounds its own fp32 result once, so two values that straddle a rounding point end one bf16 ulp
// (up to 2^-7 relative) apart; F16 likewise one fp16 ulp (2^-10 relative, or its subnormal step).
#include <algorithm>
#include <cmath>
#include <cstdio>
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
  RelAttnShape s;
  std::vector<int32_t> start, rel;
  std::vector<float> q, k, v, pq, pk;
};

Case make_case(Rng& rng, const std::vector<int64_t>& lengths, int64_t nh, int64_t hd, int64_t P, bool c2p, bool p2c,
               DType dt) {
  Case c;
  c.start.push_back(0);
  int64_t longest = 1;
  for (auto L : lengths) {
    c.start.push_back(c.start.back() + static_cast<int32_t>(L));
    longest = std::max(longest, L);
  }
  const int64_t N = c.start.back(), w = nh * hd;
  c.s.S = static_cast<int64_t>(lengths.size());
  c.s.N = N;
  c.s.nh = nh;
  c.s.hd = hd;
  c.s.P = P;
  c.s.max_len = longest + rng.integer(0, 3);
  c.s.c2p = c2p;
  c.s.p2c = p2c;
  c.s.scale = 1.0 / std::sqrt(double(hd) * (1 + c2p + p2c));
  for (int64_t i = 0; i < 2 * c.s.max_len - 1; ++i) c.rel.push_back(static_cast<int32_t>(rng.integer(0, P - 1)));
  c.q = sppo_test::randn_f32(rng, N * w);
  c.k = sppo_test::randn_f32(rng, N * w);
  c.v = sppo_test::randn_f32(rng, N * w);
  c.pq = sppo_test::randn_f32(rng, P * w);
  c.pk = sppo_test::randn_f32(rng, P * w);
  for (auto* x : {&c.q, &c.k, &c.v, &c.pq, &c.pk}) *x = sppo_test::round_to(*x, dt);
  return c;
}

std::vector<float> run(const std::shared_ptr<Backend>& be, const Case& c, DType dt, int64_t off) {
  Dev q = sppo_test::dev_as(be, c.q, dt, off), k = sppo_test::dev_as(be, c.k, dt, off + 1),
      v = sppo_test::dev_as(be, c.v, dt, off + 2), pq = sppo_test::dev_as(be, c.pq, dt, off + 3),
      pk = sppo_test::dev_as(be, c.pk, dt, off), out(be, static_cast<int64_t>(c.q.size()), dt, off + 1);
  Dev rel(be, c.rel, DType::I32, off + 2), start(be, c.start, DType::I32, off + 3);
  be->disentangled_attention(c.s, q.t(), k.t(), v.t(), pq.t(), pk.t(), rel.t(), start.t(), out.t());
  be->synchronize();
  return sppo_test::floats_of(out, dt);
}

void compare(const char* what, const Case& c, DType dt, int64_t off) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  std::vector<float> want = run(cpu, c, DType::F32, 0);
  const std::vector<float> got = run(gpu, c, dt, off);
  want = sppo_test::round_to(want, dt);
  std::vector<double> tol(want.size());
  for (size_t i = 0; i < want.size(); ++i) tol[i] = 5e-5 * (1 + std::fabs(want[i])) + 2 * sppo_test::rounding_floor(dt);
  char label[160];
  std::snprintf(label, sizeof label, "%s (S %lld N %lld heads %lld hd %lld P %lld c2p %d p2c %d %s)", what,
                (long long)c.s.S, (long long)c.s.N, (long long)c.s.nh, (long long)c.s.hd, (long long)c.s.P,
                int(c.s.c2p), int(c.s.p2c), dtype_name(dt));
  sppo_test::expect_close(label, got, want, tol, dt == DType::F32 ? 0.0 : 2 * sppo_test::rounding_of(dt));
}

}  // namespace

TEST(random_batches_match_the_cpu) {
  Rng rng(601);
  int k = 0;
  for (int64_t hd : {8, 11, 64, 96, 128, 160})
    for (int flags = 0; flags < 4; ++flags)
      for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
        std::vector<int64_t> lengths;
        const int64_t S = rng.integer(1, 5);
        for (int64_t i = 0; i < S; ++i) lengths.push_back(i == 0 ? 1 : rng.integer(0, 3) == 0 ? 0 : rng.integer(1, 70));
        const Case c = make_case(rng, lengths, rng.integer(1, 4), hd, rng.integer(1, 40), flags & 1, flags & 2, dt);
        compare("random", c, dt, k++ % 4);
      }
}

TEST(pairrm_shaped_and_a_long_bucket_table) {
  Rng rng(602);
  // PairRM's shape: 16 heads of 64, 512 bucket rows (a short packed batch: gpu-check.sh runs this
  // suite under compute-sanitizer too).
  compare("pairrm", make_case(rng, {160, 100, 0, 52}, 16, 64, 512, true, true, DType::F32), DType::F32, 1);
  compare("pairrm", make_case(rng, {128, 128}, 16, 64, 512, true, true, DType::BF16), DType::BF16, 0);
  compare("pairrm", make_case(rng, {100, 140}, 16, 64, 512, true, true, DType::F16), DType::F16, 3);
  // max_len 12300: the row of scores the kernel reserves is 49 KB, past the default 48 KB of
  // shared memory (the sequences themselves are short).
  Case c = make_case(rng, {90, 37}, 2, 16, 64, true, true, DType::F32);
  c.s.max_len = 12300;
  c.rel.resize(2 * c.s.max_len - 1);
  for (auto& r : c.rel) r = static_cast<int32_t>(rng.integer(0, c.s.P - 1));
  compare("long bucket table", c, DType::F32, 2);
}

TEST(a_sequence_gives_the_same_bits_alone_and_in_a_batch) {
  Rng rng(603);
  auto gpu = backend_for(Device::CUDA);
  const Case batch = make_case(rng, {5, 40, 0, 17, 1}, 2, 64, 30, true, true, DType::F32);
  const auto all = run(gpu, batch, DType::F32, 0);
  const int64_t w = batch.s.nh * batch.s.hd;
  for (int64_t seq = 0; seq < batch.s.S; ++seq) {
    const int64_t r0 = batch.start[seq], L = batch.start[seq + 1] - r0;
    if (L == 0) continue;
    Case one = batch;
    one.s.S = 1;
    one.s.N = L;
    one.start = {0, static_cast<int32_t>(L)};
    auto rows = [&](const std::vector<float>& x) {
      return std::vector<float>(x.begin() + r0 * w, x.begin() + (r0 + L) * w);
    };
    one.q = rows(batch.q);
    one.k = rows(batch.k);
    one.v = rows(batch.v);
    const auto alone = run(gpu, one, DType::F32, 1);
    sppo_test::expect_same_bits("alone vs batch", alone, std::vector<float>(all.begin() + r0 * w, all.begin() + (r0 + L) * w));
  }
}

TEST(bad_layouts_say_what_the_cpu_says) {
  Rng rng(604);
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  Case c = make_case(rng, {3, 4}, 1, 4, 5, true, true, DType::F32);
  c.s.max_len = 8;
  c.rel.assign(15, 1);
  auto both = [&](const char* what, const Case& bad) {
    sppo_test::expect_same_error(what, sppo_test::message_of([&] { run(cpu, bad, DType::F32, 0); }),
                                 sppo_test::message_of([&] { run(gpu, bad, DType::F32, 1); }));
  };
  Case bad = c;
  bad.start = {0, 5, 4};
  both("negative length", bad);
  bad.start = {1, 3, 7};
  both("start[0] not 0", bad);
  bad.start = {0, 3, 6};
  both("start[S] not N", bad);
  bad.start = {0, 9, 7};
  both("too long, then negative", bad);
  bad = c;
  bad.rel[2] = 5;
  bad.rel[9] = -1;
  both("rel_index out of range (the first)", bad);
  bad = c;
  bad.s.max_len = 3;
  bad.rel.resize(5);
  both("longer than max_len", bad);
  bad = c;
  bad.rel.resize(3);
  both("short rel_index", bad);
  bad = c;
  bad.s.hd = 0;
  both("bad shape", bad);
  // Without relative terms rel_index is neither required nor read.
  bad = c;
  bad.s.c2p = bad.s.p2c = false;
  bad.rel.assign(15, 99);
  compare("no relative terms, any rel_index", bad, DType::F32, 0);
  // The backend works after a reported error.
  compare("after the errors", c, DType::F32, 1);
  Dev x(gpu, 16, DType::F64), i(gpu, 15, DType::I32), st(gpu, c.start, DType::I32);
  CHECK_THROWS_WITH(gpu->disentangled_attention(c.s, x.t(), x.t(), x.t(), x.t(), x.t(), i.t(), st.t(), x.t()),
                    "disentangled_attention: the CUDA backend computes in F32, BF16 or F16 (got F64)");
}

#endif

TEST_MAIN_CUDA()
