// Benchmark of the paged KV-cache ops (kernels/attention_decode.h) on the CPU backend: one decode
// step of many sequences against their cached context, and the cache write of a prefill.
//   bench_attention_decode [--rows 32] [--context 1024] [--heads 8] [--kv-heads 2]
//                          [--head-dim 64] [--block 16] [common flags, see --help]
// Each row is one sequence of `context` cached positions in shuffled blocks. Floor: the bytes
// moved at the copy bandwidth: decode reads every row's keys and values once (the query and
// output are small); kv_write reads and writes rows * context cache rows of k and v.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "bench_common.h"

using namespace sppo;
using namespace sppo_bench;

int main(int argc, char** argv) {
  return run_main("bench_attention_decode", [&] {
    Args a(argc, argv,
           "usage: bench_attention_decode [--rows 32] [--context 1024] [--heads 8] [--kv-heads 2] [--head-dim 64] "
           "[--block 16]",
           "Times kv_write of a prefill and one decode step of --rows sequences of --context cached positions;"
           " the floor is the bytes moved at the copy bandwidth.");
    const int64_t R = a.integer("--rows", 32), L = a.integer("--context", 1024), nh = a.integer("--heads", 8),
                  nkv = a.integer("--kv-heads", 2), hd = a.integer("--head-dim", 64), bs = a.integer("--block", 16);
    a.finish(10);
    if (nh % nkv) fail("--heads (", nh, ") must be a multiple of --kv-heads (", nkv, ")");
    if (bs % 8) fail("--block must be a multiple of 8 (got ", bs, ")");
    const Floors f = measure_floors("paged attention decode and kv_write (fp32)");
    auto be = backend_for(Device::CPU);
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
    double ms = time_ms(a, [&] {
      be->kv_write(f32(k), f32(v), i32(slots), R * L, kw, pool_rows, f32(kp), f32(vp));
    });
    const double cache_bytes = 2.0 * 4 * double(R) * double(L) * double(kw);  // k and v
    row(f, "kv_write", dims({R * L, kw}), ms, Bound::Memory, 2 * cache_bytes);
    const PagedShape s{R, nh, nkv, hd, bs, blocks, per, 1.0 / std::sqrt(double(hd))};
    ms = time_ms(a, [&] {
      be->attention_decode(s, f32(q), f32(kp), f32(vp), i32(tables), i32(table_rows), i32(lengths), f32(out));
    });
    const std::string shape = std::to_string(R) + " rows x " + std::to_string(L) + " h" + std::to_string(nh) + "/" +
                              std::to_string(nkv) + " d" + std::to_string(hd);
    row(f, "attention_decode", shape, ms, Bound::Memory, cache_bytes);
  });
}
