// Benchmark of the RMSprop step (kernels/rmsprop.h) on the CPU backend over one flat range, with
// clipping by a given sum of squares.
//   bench_rmsprop [--params 8388608] [common flags, see --help]
// Floor: the bytes moved at the copy bandwidth: p, g, v read and p, v written.
#include "bench_common.h"

using namespace sppo;
using namespace sppo_bench;

int main(int argc, char** argv) {
  return run_main("bench_rmsprop", [&] {
    Args a(argc, argv, "usage: bench_rmsprop [--params 8388608]",
           "Times one RMSprop step over --params values;"
           " the floor is the bytes moved at the copy bandwidth.");
    const int64_t n = a.integer("--params", 8 << 20);
    a.finish(10);
    const Floors f = measure_floors("rmsprop_step (fp32)");
    auto be = backend_for(Device::CPU);
    std::vector<float> p = values(n, 1), g = values(n, 2), v(n, 0.f);
    std::vector<double> ss = {double(n)};
    RmspropParams h;
    h.lr = 5e-7;
    const double ms = time_ms(a, [&] { be->rmsprop_step(f32(p), f32(g), f32(v), n, h, f64(ss), 1.0); });
    row(f, "rmsprop_step", std::to_string(n) + " params", ms, Bound::Memory, 4.0 * 5 * double(n));
  });
}
