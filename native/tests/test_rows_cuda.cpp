// CUDA row ops (kernels/cuda/rows.cu) against the CPU backend: gather_rows (repeated and edge
// indices), scatter_add_rows (distinct indices onto existing rows), segment_sum (segments with
// no rows, unsorted segment ids), expand_segments; F32 and BF16 rows (F16 for gathers only: the
// adds refuse it by name, never reading its bits as BF16), widths that are not
// multiples of 8, tensors at unaligned offsets, outputs poisoned with NaN, one larger case; bad
// and repeated indices are deferred to synchronize() and reported with the CPU's messages, the
// range error first. Skips (exit 77) without a CUDA backend or device.
//
// Tolerances: gathers and expansions move or scale single values, scatter adds one value to
// one value (the same fp32 addition as the CPU): all must be the CPU's bits. segment_sum adds in
// double in another order than the CPU: one float32 rounding apart at most (2^-23 relative).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
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

void gather_case(Rng& rng, int64_t src_rows, int64_t n, int64_t H, DType dt, int64_t off) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  std::vector<float> src = sppo_test::randn_f32(rng, src_rows * H);
  src = sppo_test::round_to(src, dt);
  std::vector<int32_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[i] = i % 5 == 0 ? 0 : i % 5 == 1 ? int32_t(src_rows - 1) : int32_t(rng.integer(0, src_rows - 1));
  Dev cs(cpu, src, DType::F32), ci(cpu, idx, DType::I32), cd(cpu, n * H, DType::F32);
  cpu->gather_rows(cs.t(), src_rows, ci.t(), n, H, cd.t());
  Dev gs = sppo_test::dev_as(gpu, src, dt, off), gi(gpu, idx, DType::I32, off + 1), gd(gpu, n * H, dt, off + 2);
  gpu->gather_rows(gs.t(), src_rows, gi.t(), n, H, gd.t());
  gpu->synchronize();
  sppo_test::expect_same_bits("gather_rows dst", sppo_test::floats_of(gd, dt), cd.get<float>());
}

void scatter_case(Rng& rng, int64_t dst_rows, int64_t n, int64_t H, DType dt, int64_t off) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  std::vector<float> src = sppo_test::randn_f32(rng, n * H), dst = sppo_test::randn_f32(rng, dst_rows * H);
  if (dt == DType::BF16) src = sppo_test::round_bf16(src), dst = sppo_test::round_bf16(dst);
  std::vector<int32_t> rows(static_cast<size_t>(dst_rows));
  std::iota(rows.begin(), rows.end(), 0);
  std::shuffle(rows.begin(), rows.end(), rng.gen);
  const std::vector<int32_t> idx(rows.begin(), rows.begin() + n);  // distinct, in random order
  Dev cs(cpu, src, DType::F32), ci(cpu, idx, DType::I32), cd(cpu, dst, DType::F32);
  cpu->scatter_add_rows(cs.t(), ci.t(), n, H, dst_rows, cd.t());
  Dev gs = sppo_test::dev_as(gpu, src, dt, off), gi(gpu, idx, DType::I32, off + 3);
  Dev gd = sppo_test::dev_as(gpu, dst, dt, off + 1);
  gpu->scatter_add_rows(gs.t(), gi.t(), n, H, dst_rows, gd.t());
  gpu->synchronize();
  std::vector<float> want = cd.get<float>();
  if (dt == DType::BF16) want = sppo_test::round_bf16(want);  // the device adds in fp32, then stores bf16
  sppo_test::expect_same_bits("scatter_add_rows dst", sppo_test::floats_of(gd, dt), want);
}

void segment_case(Rng& rng, int64_t n, int64_t S, int64_t off) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const std::vector<float> x = sppo_test::randn_f32(rng, n, 5.0), xs = sppo_test::randn_f32(rng, S);
  std::vector<int32_t> seg(static_cast<size_t>(n));
  // Segments 0 and S - 1 stay empty when S > 2 (they must come out as 0).
  for (auto& s : seg) s = int32_t(S > 2 ? rng.integer(1, S - 2) : rng.integer(0, S - 1));
  Dev cx(cpu, x, DType::F32), cg(cpu, seg, DType::I32), co(cpu, S, DType::F32);
  cpu->segment_sum(cx.t(), cg.t(), n, S, co.t());
  Dev gx(gpu, x, DType::F32, off), gg(gpu, seg, DType::I32, off + 1), go(gpu, S, DType::F32, off + 2);
  gpu->segment_sum(gx.t(), gg.t(), n, S, go.t());
  gpu->synchronize();
  sppo_test::expect_close("segment_sum out", go.get<float>(), co.get<float>(), 1e-30, std::ldexp(1.0, -23));

  Dev cxs(cpu, xs, DType::F32), ce(cpu, n, DType::F32), gxs(gpu, xs, DType::F32, off + 3), ge(gpu, n, DType::F32, off);
  cpu->expand_segments(cxs.t(), cg.t(), n, S, -0.37, ce.t());
  gpu->expand_segments(gxs.t(), gg.t(), n, S, -0.37, ge.t());
  gpu->synchronize();
  sppo_test::expect_same_bits("expand_segments out", ge.get<float>(), ce.get<float>());
}

}  // namespace

TEST(gather_and_scatter_match_the_cpu_bits) {
  Rng rng(121);
  int k = 0;
  gather_case(rng, 50, 37, 67, DType::F16, 1);  // F16 (PairRM's fp16 mode): gathers only
  gather_case(rng, 8192, 1031, 2051, DType::F16, 2);
  for (DType dt : {DType::F32, DType::BF16}) {
    gather_case(rng, 1, 1, 1, dt, 0);
    gather_case(rng, 50, 37, 67, dt, k++ % 3);
    gather_case(rng, 8192, 1031, 2051, dt, 1);  // the larger case: response rows of a batch
    scatter_case(rng, 1, 1, 1, dt, 0);
    scatter_case(rng, 50, 37, 67, dt, k++ % 3);
    scatter_case(rng, 8192, 1031, 2051, dt, 2);
  }
}

TEST(f16_rows_are_gathered_and_refused_where_they_would_be_added) {
  auto gpu = backend_for(Device::CUDA);
  Dev src(gpu, 12, DType::F16), dst(gpu, 12, DType::F16), idx(gpu, std::vector<int32_t>{0, 1, 2}, DType::I32);
  CHECK_THROWS_WITH((gpu->scatter_add_rows(src.t(), idx.t(), 3, 4, 3, dst.t()), gpu->synchronize()),
                    "scatter_add_rows: CUDA rows must be F32 or BF16 (got F16)");
}

TEST(segment_sums_and_expansions_match_the_cpu) {
  Rng rng(122);
  segment_case(rng, 1, 1, 0);
  segment_case(rng, 1001, 7, 1);
  segment_case(rng, 0, 3, 2);  // no rows: every segment is 0
  segment_case(rng, 100003, 64, 3);
}

TEST(bad_indices_say_what_the_cpu_says) {
  Rng rng(123);
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const int64_t rows = 10, n = 6, H = 3;
  const std::vector<float> src = sppo_test::randn_f32(rng, rows * H);
  auto both = [&](const char* what, std::vector<int32_t> idx, int op) {
    Dev cs(cpu, src, DType::F32), ci(cpu, idx, DType::I32), cd(cpu, src, DType::F32);
    Dev gs(gpu, src, DType::F32), gi(gpu, idx, DType::I32), gd(gpu, src, DType::F32);
    auto call = [&](const std::shared_ptr<Backend>& be, Dev& s, Dev& i, Dev& d) {
      if (op == 0) be->gather_rows(s.t(), rows, i.t(), n, H, d.t());
      if (op == 1) be->scatter_add_rows(s.t(), i.t(), n, H, rows, d.t());
      if (op == 2) be->segment_sum(s.t(), i.t(), n, rows, d.t());
      if (op == 3) be->expand_segments(s.t(), i.t(), n, rows, 2.0, d.t());
    };
    sppo_test::expect_same_error(what, sppo_test::message_of([&] { call(cpu, cs, ci, cd); }),
                                 sppo_test::message_of([&] {
                                   call(gpu, gs, gi, gd);
                                   gpu->synchronize();
                                 }));
  };
  for (int op = 0; op < 4; ++op) {
    both("index too large", {0, 1, 2, 10, 4, 5}, op);
    both("negative index", {0, 1, 2, 3, -1, 11}, op);
  }
  both("repeat", {0, 1, 2, 1, 4, 2}, 1);            // idx[3] repeats idx[1]
  both("range before repeat", {0, 0, 2, 3, 4, 10}, 1);  // the CPU checks ranges first
  gpu->synchronize();
}

#endif

TEST_MAIN_CUDA()
