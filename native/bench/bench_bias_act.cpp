// Benchmark of the bias + activation op (kernels/bias_act.h) through the CPU backend, in place,
// for each activation: median ms, elements/s and GB/s (one read and one write).
//   bench_bias_act [--rows 2048] [--cols 4096] [--iters 10] [--warmup 2]
#include <cstdio>
#include <vector>

#include "backend/backend.h"
#include "bench_args.h"

using namespace sppo;

int main(int argc, char** argv) {
  const sppo_bench::Args a(argc, argv, "bench_bias_act: y = act(x + b), in place",
                           {{"rows", 2048}, {"cols", 4096}, {"iters", 10}, {"warmup", 2}});
  const int64_t n = a["rows"], H = a["cols"];
  if (n < 1 || H < 1) return std::fprintf(stderr, "--rows and --cols must be >= 1\n"), 2;
  auto be = backend_for(Device::CPU);
  std::vector<float> x(n * H), b(H, 0.01f);
  sppo_bench::print_device();
  for (Activation act : {Activation::Identity, Activation::Gelu, Activation::Tanh}) {
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 2654435761u) % 2000) * 2e-3f - 2.f;
    const Tensor tx(x.data(), DType::F32, n * H), tb(b.data(), DType::F32, H);
    const double ms = sppo_bench::median_ms(static_cast<int>(a["warmup"]), static_cast<int>(a["iters"]),
                                            [&] { be->bias_act(tx, tb, n, H, act, tx); });
    std::printf("%-8s f32 %lldx%lld: %.3f ms, %.0f M elements/s, %.1f GB/s\n", activation_name(act),
                static_cast<long long>(n), static_cast<long long>(H), ms, n * H / (ms * 1e3), 2.0 * n * H * 4 / (ms * 1e6));
  }
  return 0;
}
