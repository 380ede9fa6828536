// CUDA embedding lookup and its deterministic backward (kernels/cuda/embedding.cu) against the
// CPU backend, on fresh random inputs: vocabularies and widths that are not multiples of 8,
// padding ids, hot ids repeated hundreds of times, tensors at unaligned offsets, outputs poisoned
// with NaN, one larger case; ids out of range are deferred to synchronize() and reported with
// the CPU's message. Skips (exit 77) without a CUDA backend or device.
//
// Tolerance: none. The forward copies rows; the backward adds each table row's terms in
// increasing row order in fp32, as the CPU does, so both must give the same bits (BF16 dout is
// compared with the CPU on the same bf16 values, which convert to fp32 exactly; a BF16 dtable is the
// CPU's fp32 sum rounded once).
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

// ids in [-1, V): padding, the edges 0 and V - 1, a hot id (repeated), and uniform ones.
std::vector<int32_t> make_ids(Rng& rng, int64_t n, int64_t V) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  const int32_t hot = static_cast<int32_t>(rng.integer(0, V - 1));
  for (auto& id : ids) {
    const int64_t r = rng.integer(0, 9);
    id = r == 0 ? -1 : r == 1 ? 0 : r == 2 ? int32_t(V - 1) : r < 6 ? hot : int32_t(rng.integer(0, V - 1));
  }
  return ids;
}

void forward_case(Rng& rng, int64_t V, int64_t H, int64_t n, DType dt, int64_t off) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  std::vector<float> table = sppo_test::randn_f32(rng, V * H);
  table = sppo_test::round_to(table, dt);
  const std::vector<int32_t> ids = make_ids(rng, n, V);
  Dev ct(cpu, table, DType::F32), ci(cpu, ids, DType::I32), co(cpu, n * H, DType::F32);
  cpu->embedding_forward(ct.t(), V, H, ci.t(), n, co.t());
  Dev gt = sppo_test::dev_as(gpu, table, dt, off), gi(gpu, ids, DType::I32, off + 1), go(gpu, n * H, dt, off + 2);
  gpu->embedding_forward(gt.t(), V, H, gi.t(), n, go.t());
  gpu->synchronize();
  sppo_test::expect_same_bits("embedding_forward out", sppo_test::floats_of(go, dt), co.get<float>());
}

// tdt: dtable's type (BF16: the bf16 gradient arena; the CPU's F32 sum from the same bf16 values,
// rounded once, is the expected bits: the CUDA kernel widens, adds in the CPU's order, rounds once).
void backward_case(Rng& rng, int64_t V, int64_t H, int64_t n, DType dt, int64_t off, DType tdt = DType::F32) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  std::vector<float> dout = sppo_test::randn_f32(rng, n * H);
  if (dt == DType::BF16) dout = sppo_test::round_bf16(dout);
  std::vector<float> dtable0 = sppo_test::randn_f32(rng, V * H);  // gradients accumulate
  if (tdt == DType::BF16) dtable0 = sppo_test::round_bf16(dtable0);
  const std::vector<int32_t> ids = make_ids(rng, n, V);
  Dev cd(cpu, dout, DType::F32), ci(cpu, ids, DType::I32), ct(cpu, dtable0, DType::F32);
  cpu->embedding_backward(cd.t(), ci.t(), n, V, H, ct.t());
  Dev gd = sppo_test::dev_as(gpu, dout, dt, off), gi(gpu, ids, DType::I32, off + 3);
  Dev gt = sppo_test::dev_as(gpu, dtable0, tdt, off + 1);
  gpu->embedding_backward(gd.t(), gi.t(), n, V, H, gt.t());
  gpu->synchronize();
  const std::vector<float> want = tdt == DType::BF16 ? sppo_test::round_bf16(ct.get<float>()) : ct.get<float>();
  sppo_test::expect_same_bits(tdt == DType::BF16 ? "embedding_backward bf16 dtable" : "embedding_backward dtable",
                              sppo_test::floats_of(gt, tdt), want);
}

}  // namespace

TEST(forward_copies_rows_and_zeros_padding) {
  Rng rng(71);
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    forward_case(rng, 1, 1, 1, dt, 0);
    forward_case(rng, 1003, 67, 37, dt, 1);
    forward_case(rng, 32003, 515, 301, dt, 3);
  }
}

TEST(backward_adds_in_row_order_with_the_cpus_bits) {
  Rng rng(72);
  for (DType dt : {DType::F32, DType::BF16}) {
    backward_case(rng, 1, 1, 1, dt, 0);
    backward_case(rng, 7, 3, 100, dt, 1);        // every id repeated many times
    backward_case(rng, 1003, 67, 37, dt, 2);
    backward_case(rng, 32003, 515, 4099, dt, 5);  // the larger case: a hot id ~1200 times
  }
}

TEST(backward_into_a_bf16_table_rounds_the_cpus_fp32_sum_once) {
  Rng rng(75);
  backward_case(rng, 1, 1, 1, DType::BF16, 0, DType::BF16);
  backward_case(rng, 7, 3, 100, DType::BF16, 1, DType::BF16);
  backward_case(rng, 32003, 515, 4099, DType::BF16, 2, DType::BF16);
  auto gpu = backend_for(Device::CUDA);  // an F32 dout's table stays F32, as on the CPU
  Dev d(gpu, 4, DType::F32), i(gpu, std::vector<int32_t>{0, 1}, DType::I32), t(gpu, 4, DType::BF16);
  CHECK_THROWS_WITH(gpu->embedding_backward(d.t(), i.t(), 2, 2, 2, t.t()), "embedding_backward: dtable must be F32 (got BF16)");
}

TEST(backward_is_the_same_bits_every_run) {
  Rng rng(73);
  auto gpu = backend_for(Device::CUDA);
  const int64_t V = 509, H = 129, n = 2001;
  const std::vector<float> dout = sppo_test::randn_f32(rng, n * H);
  const std::vector<int32_t> ids = make_ids(rng, n, V);
  Dev d(gpu, dout, DType::F32), i(gpu, ids, DType::I32);
  std::vector<float> first;
  for (int run = 0; run < 3; ++run) {
    Dev t(gpu, std::vector<float>(V * H, 0.f), DType::F32);
    gpu->embedding_backward(d.t(), i.t(), n, V, H, t.t());
    gpu->synchronize();
    if (run == 0) first = t.get<float>();
    else sppo_test::expect_same_bits("rerun dtable", t.get<float>(), first);
  }
}

TEST(ids_outside_the_vocabulary_say_what_the_cpu_says) {
  Rng rng(74);
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const int64_t V = 100, H = 9, n = 12;
  std::vector<int32_t> ids = make_ids(rng, n, V);
  ids[7] = 100;
  ids[9] = 12345;  // the lowest bad row is reported
  const std::vector<float> table = sppo_test::randn_f32(rng, V * H), dout = sppo_test::randn_f32(rng, n * H);
  Dev ct(cpu, table, DType::F32), ci(cpu, ids, DType::I32), co(cpu, n * H, DType::F32), cd(cpu, dout, DType::F32);
  Dev gt(gpu, table, DType::F32), gi(gpu, ids, DType::I32), go(gpu, n * H, DType::F32), gd(gpu, dout, DType::F32);
  sppo_test::expect_same_error(
      "forward", sppo_test::message_of([&] { cpu->embedding_forward(ct.t(), V, H, ci.t(), n, co.t()); }),
      sppo_test::message_of([&] {
        gpu->embedding_forward(gt.t(), V, H, gi.t(), n, go.t());
        gpu->synchronize();
      }));
  sppo_test::expect_same_error(
      "backward", sppo_test::message_of([&] { cpu->embedding_backward(cd.t(), ci.t(), n, V, H, ct.t()); }),
      sppo_test::message_of([&] {
        gpu->embedding_backward(gd.t(), gi.t(), n, V, H, gt.t());
        gpu->synchronize();
      }));
  gpu->synchronize();  // reported once: the stream is clean again
  CHECK_THROWS_WITH(gpu->embedding_forward(gt.t(), V, H, gi.t(), n, Tensor(go.data(), DType::F32, 3)),
                    "embedding_forward: out has 3 elements, needs 108");
}

#endif

TEST_MAIN_CUDA()
