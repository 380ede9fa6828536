// Benchmark of the RMSprop step (kernels/rmsprop.h) on the CPU backend over one flat range, with
// clipping by a given sum of squares; then the bf16 mode's step (fp32 master, bf16 weights written
// in the same pass), and that step over bf16 gradients (the bf16 gradient arena, widened per element).
//   bench_rmsprop [--params 8388608] [common flags, see --help]
// Floor: the bytes moved at the copy bandwidth: p, g, v read and p, v written (+ 2 bytes of bf16
// weights written an element in the bf16 row; 2 bytes fewer read with bf16 gradients).
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
    const double ms = time_ms(a, [&] { be->rmsprop_step(f32(p), f32(g), f32(v), n, h, f64(ss), 1.0, Tensor()); });
    row(f, "rmsprop_step", std::to_string(n) + " params", ms, Bound::Memory, 4.0 * 5 * double(n));
    std::vector<uint16_t> w16(static_cast<size_t>(n));
    const Tensor w(w16.data(), DType::BF16, n);
    const double ms16 = time_ms(a, [&] { be->rmsprop_step(f32(p), f32(g), f32(v), n, h, f64(ss), 1.0, w); });
    row(f, "rmsprop_step +bf16 w", std::to_string(n) + " params", ms16, Bound::Memory, 22.0 * double(n));
    std::vector<uint16_t> g16(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) g16[static_cast<size_t>(i)] = f32_to_bf16(g[static_cast<size_t>(i)]);
    const Tensor gt(g16.data(), DType::BF16, n);
    const double msg = time_ms(a, [&] { be->rmsprop_step(f32(p), gt, f32(v), n, h, f64(ss), 1.0, w); });
    row(f, "rmsprop bf16 w+g", std::to_string(n) + " params", msg, Bound::Memory, 20.0 * double(n));
  });
}
