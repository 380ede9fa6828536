// Benchmark of the LayerNorm op (kernels/layernorm.h) through the CPU backend, in place as the
// DeBERTa encoder runs it: median ms and GB/s (one read and one write of the rows).
//   bench_layernorm [--rows 4096] [--hidden 1024] [--iters 10] [--warmup 2]
#include <cstdio>
#include <vector>

#include "backend/backend.h"
#include "bench_args.h"

using namespace sppo;

int main(int argc, char** argv) {
  const sppo_bench::Args a(argc, argv, "bench_layernorm: LayerNorm forward, in place",
                           {{"rows", 4096}, {"hidden", 1024}, {"iters", 10}, {"warmup", 2}});
  const int64_t n = a["rows"], H = a["hidden"];
  if (n < 1 || H < 1) return std::fprintf(stderr, "--rows and --hidden must be >= 1\n"), 2;
  auto be = backend_for(Device::CPU);
  std::vector<float> x(n * H), w(H, 1.1f), b(H, 0.1f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 2654435761u) % 1000) * 1e-3f;
  const Tensor tx(x.data(), DType::F32, n * H), tw(w.data(), DType::F32, H), tb(b.data(), DType::F32, H);
  const double ms = sppo_bench::median_ms(static_cast<int>(a["warmup"]), static_cast<int>(a["iters"]),
                                          [&] { be->layernorm_forward(tx, tw, tb, n, H, 1e-7, tx); });
  sppo_bench::print_device();
  std::printf("layernorm f32 %lldx%lld: %.3f ms, %.1f GB/s\n", static_cast<long long>(n), static_cast<long long>(H), ms,
              2.0 * n * H * 4 / (ms * 1e6));
  return 0;
}
