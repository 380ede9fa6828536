// Benchmark of the gradients' sum of squares (kernels/global_norm.h) on the CPU backend, the
// first half of clipping by the global norm; then over bf16 gradients (the bf16 gradient arena,
// widened per element).
//   bench_global_norm [--params 16777216] [common flags, see --help]
// Floor: the bytes read (the gradients, once: 4 or 2 bytes an element) at the copy bandwidth.
#include "bench_common.h"

using namespace sppo;
using namespace sppo_bench;

int main(int argc, char** argv) {
  return run_main("bench_global_norm", [&] {
    Args a(argc, argv, "usage: bench_global_norm [--params 16777216]",
           "Times the sum of squares over --params values;"
           " the floor is the bytes read at the copy bandwidth.");
    const int64_t n = a.integer("--params", 16 << 20);
    a.finish(10);
    const Floors f = measure_floors("sum_squares (fp32 in, float64 sums)");
    auto be = backend_for(Device::CPU);
    std::vector<float> g = values(n);
    std::vector<double> acc = {0.0};
    const double ms = time_ms(a, [&] { be->sum_squares(f32(g), n, f64(acc)); });
    row(f, "sum_squares", std::to_string(n) + " params", ms, Bound::Memory, 4.0 * double(n));
    std::vector<uint16_t> g16(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) g16[static_cast<size_t>(i)] = f32_to_bf16(g[static_cast<size_t>(i)]);
    const Tensor t16(g16.data(), DType::BF16, n);
    const double ms16 = time_ms(a, [&] { be->sum_squares(t16, n, f64(acc)); });
    row(f, "sum_squares bf16 g", std::to_string(n) + " params", ms16, Bound::Memory, 2.0 * double(n));
  });
}
