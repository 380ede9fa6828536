// Benchmark of the SwiGLU activation (kernels/swiglu.h) on the CPU backend, forward and backward.
//   bench_swiglu [--rows 2048] [--intermediate 5632] [common flags, see --help]
// Floor: the bytes moved at the copy bandwidth: forward reads gate and up and writes act;
// backward reads gate, up and dact and writes dgate and dup.
#include "bench_common.h"

using namespace sppo;
using namespace sppo_bench;

int main(int argc, char** argv) {
  return run_main("bench_swiglu", [&] {
    Args a(argc, argv, "usage: bench_swiglu [--rows 2048] [--intermediate 5632]",
           "Times SwiGLU forward and backward over rows x intermediate;"
           " the floor is the bytes moved at the copy bandwidth.");
    const int64_t n = a.integer("--rows", 2048), I = a.integer("--intermediate", 5632), count = n * I;
    a.finish(10);
    const Floors f = measure_floors("swiglu (fp32)");
    auto be = backend_for(Device::CPU);
    std::vector<float> gate = values(count, 1), up = values(count, 2), act(count), dact = values(count, 3),
                       dgate(count), dup(count);
    const double bytes = 4.0 * double(count);
    double ms = time_ms(a, [&] { be->swiglu_forward(f32(gate), f32(up), count, f32(act)); });
    row(f, "swiglu_forward", dims({n, I}), ms, Bound::Memory, 3 * bytes);
    ms = time_ms(a, [&] { be->swiglu_backward(f32(gate), f32(up), f32(dact), count, f32(dgate), f32(dup)); });
    row(f, "swiglu_backward", dims({n, I}), ms, Bound::Memory, 5 * bytes);
  });
}
