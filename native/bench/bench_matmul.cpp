// Benchmark of the matrix product (kernels/matmul.h) on the CPU backend in the three forms the
// model uses: x W^T (forward), dY W (input gradient) and dW += dY^T X (weight gradient).
//   bench_matmul [--m 512] [--n 1024] [--k 1024] [common flags, see --help]
// M is the tokens, N and K the layer's output and input widths. Floor: 2 M N K FLOPs at the
// fused multiply-add peak measured in the same run.
#include "bench_common.h"

using namespace sppo;
using namespace sppo_bench;

int main(int argc, char** argv) {
  return run_main("bench_matmul", [&] {
    Args a(argc, argv, "usage: bench_matmul [--m 512] [--n 1024] [--k 1024]",
           "Times x W^T, dY W and dW += dY^T X (M tokens, N outputs, K inputs);"
           " the floor is 2 M N K FLOPs at the FMA peak.");
    const int64_t M = a.integer("--m", 512), N = a.integer("--n", 1024), K = a.integer("--k", 1024);
    a.finish(5);
    const Floors f = measure_floors("matmul (fp32, the model's three forms)");
    auto be = backend_for(Device::CPU);
    const double flops = 2.0 * double(M) * double(N) * double(K);
    {  // forward: x [M, K], W [N, K], y [M, N]
      std::vector<float> x = values(M * K, 1), w = values(N * K, 2), y(M * N);
      const double ms = time_ms(a, [&] { be->matmul(f32(x), f32(w), f32(y), M, N, K, false, true, false); });
      row(f, "x W^T", dims({M, N, K}), ms, Bound::Compute, flops);
    }
    {  // input gradient: dY [M, N], W [N, K], dx [M, K]
      std::vector<float> dy = values(M * N, 3), w = values(N * K, 4), dx(M * K);
      const double ms = time_ms(a, [&] { be->matmul(f32(dy), f32(w), f32(dx), M, K, N, false, false, false); });
      row(f, "dY W", dims({M, K, N}), ms, Bound::Compute, flops);
    }
    {  // weight gradient: dY [M, N], X [M, K], dW [N, K] accumulated
      std::vector<float> dy = values(M * N, 5), x = values(M * K, 6), dw(N * K, 0.f);
      const double ms = time_ms(a, [&] { be->matmul(f32(dy), f32(x), f32(dw), N, K, M, true, false, true); });
      row(f, "dW += dY^T X", dims({N, K, M}), ms, Bound::Compute, flops);
    }
  });
}
