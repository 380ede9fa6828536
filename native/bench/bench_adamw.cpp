// Benchmark of the AdamW step (kernels/adamw.h) on the CPU backend over one flat range, with
// clipping by a given sum of squares; then the bf16 mode's step (fp32 master, bf16 weights written
// in the same pass).
//   bench_adamw [--params 8388608] [common flags, see --help]
// Floor: the bytes moved at the copy bandwidth: p, g, m, v read and p, m, v written (+ 2 bytes of
// bf16 weights written an element in the bf16 row).
#include "bench_common.h"

using namespace sppo;
using namespace sppo_bench;

int main(int argc, char** argv) {
  return run_main("bench_adamw", [&] {
    Args a(argc, argv, "usage: bench_adamw [--params 8388608]",
           "Times one AdamW step over --params values;"
           " the floor is the bytes moved at the copy bandwidth.");
    const int64_t n = a.integer("--params", 8 << 20);
    a.finish(10);
    const Floors f = measure_floors("adamw_step (fp32)");
    auto be = backend_for(Device::CPU);
    std::vector<float> p = values(n, 1), g = values(n, 2), m(n, 0.f), v(n, 0.f);
    std::vector<double> ss = {double(n)};
    AdamwParams h;
    h.lr = 1e-6;
    h.weight_decay = 0.01;
    const double ms = time_ms(a, [&] {
      be->adamw_step(f32(p), f32(g), f32(m), f32(v), n, h, f64(ss), 1.0, Tensor());
      ++h.step;
    });
    row(f, "adamw_step", std::to_string(n) + " params", ms, Bound::Memory, 4.0 * 7 * double(n));
    std::vector<uint16_t> w16(static_cast<size_t>(n));
    const Tensor w(w16.data(), DType::BF16, n);
    const double ms16 = time_ms(a, [&] {
      be->adamw_step(f32(p), f32(g), f32(m), f32(v), n, h, f64(ss), 1.0, w);
      ++h.step;
    });
    row(f, "adamw_step +bf16 w", std::to_string(n) + " params", ms16, Bound::Memory, 30.0 * double(n));
  });
}
