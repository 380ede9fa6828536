// Benchmark of rotary embeddings (kernels/rope.h) on the CPU backend: the cos/sin tables of a
// batch's positions and the rotation of q-sized activations, forward and inverse.
//   bench_rope [--rows 4096] [--heads 32] [--head-dim 64] [common flags, see --help]
// Floor: the bytes moved at the copy bandwidth: apply reads and writes x and reads the tables;
// tables write cos and sin (they are compute-bound: one double cos and sin per entry, so their
// multiple of this floor is large by nature).
#include <cmath>

#include "bench_common.h"

using namespace sppo;
using namespace sppo_bench;

int main(int argc, char** argv) {
  return run_main("bench_rope", [&] {
    Args a(argc, argv, "usage: bench_rope [--rows 4096] [--heads 32] [--head-dim 64]",
           "Times the rope tables and the rotation (forward and inverse);"
           " the floor is the bytes moved at the copy bandwidth.");
    const int64_t n = a.integer("--rows", 4096), heads = a.integer("--heads", 32), hd = a.integer("--head-dim", 64);
    a.finish(10);
    if (hd % 2) fail("--head-dim must be even (got ", hd, ")");
    const int64_t half = hd / 2;
    const Floors f = measure_floors("rope (fp32 tables and rotation)");
    auto be = backend_for(Device::CPU);
    std::vector<float> inv(half), c(n * half), s(n * half), x = values(n * heads * hd);
    for (int64_t i = 0; i < half; ++i) inv[i] = float(1.0 / std::pow(500000.0, 2.0 * double(i) / double(hd)));
    std::vector<int32_t> pos(n);
    for (int64_t i = 0; i < n; ++i) pos[i] = int32_t(i % 2048);
    const double tbytes = 2.0 * 4 * double(n) * double(half), xbytes = 4.0 * double(n) * double(heads * hd);
    double ms = time_ms(a, [&] { be->rope_tables(f32(inv), half, i32(pos), n, f32(c), f32(s)); });
    row(f, "rope_tables", dims({n, half}), ms, Bound::Memory, tbytes);
    ms = time_ms(a, [&] { be->rope_apply(f32(x), n, heads, hd, f32(c), f32(s), false); });
    row(f, "rope_apply", dims({n, heads, hd}), ms, Bound::Memory, 2 * xbytes + tbytes);
    ms = time_ms(a, [&] { be->rope_apply(f32(x), n, heads, hd, f32(c), f32(s), true); });
    row(f, "rope_apply (inverse)", dims({n, heads, hd}), ms, Bound::Memory, 2 * xbytes + tbytes);
  });
}
