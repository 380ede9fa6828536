// Benchmark of the row ops (kernels/rows.h) on the CPU backend: gathering a batch's response rows,
// scattering their gradient back, and per-sequence sums and their expansion.
//   bench_rows [--rows 4096] [--hidden 2048] [--tokens 1048576] [--segments 64]
//              [common flags, see --help]
// Floor: the bytes moved at the copy bandwidth: gather reads and writes rows x hidden values;
// scatter-add reads them and reads and writes the destination rows; segment_sum reads values and
// segment ids; expand_segments reads the ids and writes the values.
#include "bench_common.h"

using namespace sppo;
using namespace sppo_bench;

int main(int argc, char** argv) {
  return run_main("bench_rows", [&] {
    Args a(argc, argv, "usage: bench_rows [--rows 4096] [--hidden 2048] [--tokens 1048576] [--segments 64]",
           "Times gather_rows, scatter_add_rows, segment_sum and expand_segments;"
           " the floor is the bytes moved at the copy bandwidth.");
    const int64_t n = a.integer("--rows", 4096), H = a.integer("--hidden", 2048), m = a.integer("--tokens", 1 << 20),
                  S = a.integer("--segments", 64);
    a.finish(10);
    const Floors f = measure_floors("rows (gather, scatter-add, segment sums; fp32)");
    auto be = backend_for(Device::CPU);
    const int64_t src_rows = 2 * n;
    std::vector<float> src = values(src_rows * H, 1), dst(n * H), grad = values(n * H, 2), acc(src_rows * H, 0.f);
    std::vector<int32_t> idx(n);
    for (int64_t i = 0; i < n; ++i) idx[i] = int32_t((i * 7919) % src_rows);  // distinct: 7919 is prime
    const double bytes = 4.0 * double(n) * double(H);
    double ms = time_ms(a, [&] { be->gather_rows(f32(src), src_rows, i32(idx), n, H, f32(dst)); });
    row(f, "gather_rows", dims({n, H}), ms, Bound::Memory, 2 * bytes);
    ms = time_ms(a, [&] { be->scatter_add_rows(f32(grad), i32(idx), n, H, src_rows, f32(acc)); });
    row(f, "scatter_add_rows", dims({n, H}), ms, Bound::Memory, 3 * bytes);
    std::vector<float> x = values(m, 3), sums(S), ex(m);
    std::vector<int32_t> seg(m);
    for (int64_t i = 0; i < m; ++i) seg[i] = int32_t(i * S / m);
    ms = time_ms(a, [&] { be->segment_sum(f32(x), i32(seg), m, S, f32(sums)); });
    row(f, "segment_sum", std::to_string(m) + " into " + std::to_string(S), ms, Bound::Memory, 8.0 * double(m));
    ms = time_ms(a, [&] { be->expand_segments(f32(sums), i32(seg), m, S, 0.5, f32(ex)); });
    row(f, "expand_segments", std::to_string(S) + " to " + std::to_string(m), ms, Bound::Memory, 8.0 * double(m));
  });
}
