// Benchmark of RMSNorm (kernels/rmsnorm.h) on the CPU backend, forward and backward.
//   bench_rmsnorm [--rows 4096] [--hidden 2048] [common flags, see --help]
// Floor: the bytes moved at the copy bandwidth: forward reads x and writes y; backward reads x
// and dy and writes dx (the weight and per-row statistics are small).
#include "bench_common.h"

using namespace sppo;
using namespace sppo_bench;

int main(int argc, char** argv) {
  return run_main("bench_rmsnorm", [&] {
    Args a(argc, argv, "usage: bench_rmsnorm [--rows 4096] [--hidden 2048]",
           "Times RMSNorm forward and backward;"
           " the floor is the bytes moved at the copy bandwidth.");
    const int64_t n = a.integer("--rows", 4096), H = a.integer("--hidden", 2048);
    a.finish(10);
    const Floors f = measure_floors("rmsnorm (fp32)");
    auto be = backend_for(Device::CPU);
    std::vector<float> x = values(n * H, 1), w(H, 1.f), y(n * H), rstd(n), dy = values(n * H, 2), dx(n * H), dw(H, 0.f);
    const double bytes = 4.0 * double(n) * double(H);
    double ms = time_ms(a, [&] { be->rmsnorm_forward(f32(x), f32(w), n, H, 1e-5, f32(y), f32(rstd)); });
    row(f, "rmsnorm_forward", dims({n, H}), ms, Bound::Memory, 2 * bytes);
    ms = time_ms(a, [&] {
      be->rmsnorm_backward(f32(x), f32(w), f32(rstd), f32(dy), n, H, f32(dx), f32(dw), false);
    });
    row(f, "rmsnorm_backward", dims({n, H}), ms, Bound::Memory, 3 * bytes);
  });
}
