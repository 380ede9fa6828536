// Benchmark of the paged KV-cache ops (kernels/attention_decode.h) on the CPU backend or (--device
// cuda) the CUDA backend: one decode step of many sequences against their cached context, and the
// cache write of a prefill.
//   bench_attention_decode [--rows 32] [--context 1024] [--heads 8] [--kv-heads 2]
//                          [--head-dim 64] [--block 16] [--device cpu|cuda] [--dtype f32|bf16 (cuda)]
//                          [common flags, see --help]
// Each row is one sequence of `context` cached positions in shuffled blocks. Floor (CPU): the
// bytes moved at the copy bandwidth: decode reads every row's keys and values once (the query and
// output are small); kv_write reads and writes rows * context cache rows of k and v. On CUDA:
// device time between events (bench_cuda.h), no floor; few rows with a long context take the
// split launch (cuda/attention_decode.cu).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "bench_common.h"
#include "bench_cuda.h"

using namespace sppo;
using namespace sppo_bench;

int main(int argc, char** argv) {
  return run_main("bench_attention_decode", [&] {
    Args a(argc, argv,
           "usage: bench_attention_decode [--rows 32] [--context 1024] [--heads 8] [--kv-heads 2] [--head-dim 64] "
           "[--block 16] [--device cpu|cuda] [--dtype f32|bf16]",
           "Times kv_write of a prefill and one decode step of --rows sequences of --context cached positions;"
           " the floor (CPU) is the bytes moved at the copy bandwidth; on CUDA, device time between events.");
    const int64_t R = a.integer("--rows", 32), L = a.integer("--context", 1024), nh = a.integer("--heads", 8),
                  nkv = a.integer("--kv-heads", 2), hd = a.integer("--head-dim", 64), bs = a.integer("--block", 16);
    const bool cuda = wants_cuda(a);
    const DType dt = gpu_dtype(a, cuda);
    a.finish(cuda ? 20 : 10, cuda ? 3 : 1);
    if (nh % nkv) fail("--heads (", nh, ") must be a multiple of --kv-heads (", nkv, ")");
    if (bs % 8) fail("--block must be a multiple of 8 (got ", bs, ")");
    const int64_t per = (L + bs - 1) / bs, blocks = R * per, kw = nkv * hd, pool_rows = blocks * bs;
    std::vector<int32_t> perm(blocks);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937(5));
    std::vector<int32_t> tables(perm), table_rows(R), lengths(R, int32_t(L)), slots(R * L);
    std::iota(table_rows.begin(), table_rows.end(), 0);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t t = 0; t < L; ++t) slots[r * L + t] = tables[r * per + t / bs] * int32_t(bs) + int32_t(t % bs);
    std::vector<float> k = values(R * L * kw, 1), v = values(R * L * kw, 2), kp(pool_rows * kw), vp(pool_rows * kw),
                       q = values(R * nh * hd, 3), out(R * nh * hd);
    const double esize = dt == DType::BF16 ? 2 : 4;
    const double cache_bytes = 2.0 * esize * double(R) * double(L) * double(kw);  // k and v
    const PagedShape s{R, nh, nkv, hd, bs, blocks, per, 1.0 / std::sqrt(double(hd))};
    const std::string shape = std::to_string(R) + " rows x " + std::to_string(L) + " h" + std::to_string(nh) + "/" +
                              std::to_string(nkv) + " d" + std::to_string(hd) + (dt == DType::BF16 ? " bf16" : "");
    if (cuda) {
      print_cuda_header("paged attention decode and kv_write");
      auto be = backend_for(Device::CUDA);
      const DeviceVec gk(be, k, dt), gv(be, v, dt), gkp(be, kp, dt), gvp(be, vp, dt), gq(be, q, dt),
          gout(be, out, dt), gslots(be, slots, DType::I32), gtab(be, tables, DType::I32),
          grows(be, table_rows, DType::I32), glen(be, lengths, DType::I32);
      double ms = cuda_time_ms(a, *be, [&] {
        be->kv_write(gk.t(), gv.t(), gslots.t(), R * L, kw, pool_rows, gkp.t(), gvp.t());
      });
      cuda_row("kv_write", dims({R * L, kw}), ms, Bound::Memory, 2 * cache_bytes);
      ms = cuda_time_ms(a, *be, [&] {
        be->attention_decode(s, gq.t(), gkp.t(), gvp.t(), gtab.t(), grows.t(), glen.t(), gout.t());
      });
      cuda_row("attention_decode", shape, ms, Bound::Memory, cache_bytes);
      return;
    }
    const Floors f = measure_floors("paged attention decode and kv_write (fp32)");
    auto be = backend_for(Device::CPU);
    double ms = time_ms(a, [&] {
      be->kv_write(f32(k), f32(v), i32(slots), R * L, kw, pool_rows, f32(kp), f32(vp));
    });
    row(f, "kv_write", dims({R * L, kw}), ms, Bound::Memory, 2 * cache_bytes);
    ms = time_ms(a, [&] {
      be->attention_decode(s, f32(q), f32(kp), f32(vp), i32(tables), i32(table_rows), i32(lengths), f32(out));
    });
    row(f, "attention_decode", shape, ms, Bound::Memory, cache_bytes);
  });
}
