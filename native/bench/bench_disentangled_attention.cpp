// Benchmark of DeBERTa's disentangled attention (kernels/disentangled_attention.h) through the CPU
// backend: S packed sequences of length L with PairRM's heads and buckets. Reports median ms and
// GFLOP/s counting 2 flops per multiply-add of the content product, the value product and the
// two relative products (over the bucket rows the sequence reaches).
//   bench_disentangled_attention [--seqs 4] [--len 512] [--heads 16] [--head-dim 64]
//                                [--buckets 256] [--iters 5] [--warmup 1]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "backend/backend.h"
#include "bench_args.h"
#include "model/relative_position.h"

using namespace sppo;

int main(int argc, char** argv) {
  const sppo_bench::Args a(argc, argv, "bench_disentangled_attention: DeBERTa attention with c2p and p2c",
                           {{"seqs", 4}, {"len", 512}, {"heads", 16}, {"head-dim", 64}, {"buckets", 256},
                            {"iters", 5}, {"warmup", 1}});
  const int64_t S = a["seqs"], L = a["len"], nh = a["heads"], hd = a["head-dim"], buckets = a["buckets"];
  if (S < 1 || L < 1 || nh < 1 || hd < 1 || buckets < 4)
    return std::fprintf(stderr, "--seqs, --len, --heads, --head-dim must be >= 1 and --buckets >= 4\n"), 2;
  PairRmConfig c;
  c.position_buckets = buckets;
  c.max_relative_positions = 2 * buckets;
  std::vector<int32_t> rel = relative_rows(c, L), start(S + 1);
  const auto [lo, hi] = std::minmax_element(rel.begin(), rel.end());
  const int64_t P = *hi - *lo + 1, low = *lo;
  for (auto& r : rel) r -= static_cast<int32_t>(low);
  for (int64_t s = 0; s <= S; ++s) start[s] = static_cast<int32_t>(s * L);
  const int64_t N = S * L, w = nh * hd;
  std::vector<float> q(N * w), k(N * w), v(N * w), pq(P * w), pk(P * w), out(N * w);
  for (auto* x : {&q, &k, &v, &pq, &pk})
    for (size_t i = 0; i < x->size(); ++i) (*x)[i] = std::sin(0.37f * static_cast<float>(i));
  RelAttnShape sh;
  sh.S = S;
  sh.N = N;
  sh.nh = nh;
  sh.hd = hd;
  sh.P = P;
  sh.max_len = L;
  sh.scale = 1.0 / std::sqrt(3.0 * hd);
  auto be = backend_for(Device::CPU);
  auto t = [](std::vector<float>& x) { return Tensor(x.data(), DType::F32, static_cast<int64_t>(x.size())); };
  auto ti = [](std::vector<int32_t>& x) { return Tensor(x.data(), DType::I32, static_cast<int64_t>(x.size())); };
  const double ms = sppo_bench::median_ms(static_cast<int>(a["warmup"]), static_cast<int>(a["iters"]), [&] {
    be->disentangled_attention(sh, t(q), t(k), t(v), t(pq), t(pk), ti(rel), ti(start), t(out));
  });
  const double flops = 2.0 * S * nh * (2.0 * L * L * hd + 2.0 * L * P * hd);
  sppo_bench::print_device();
  std::printf("disentangled attention f32, %lld x %lld tokens, %lld heads x %lld, %lld bucket rows: %.2f ms, %.1f GFLOP/s\n",
              static_cast<long long>(S), static_cast<long long>(L), static_cast<long long>(nh),
              static_cast<long long>(hd), static_cast<long long>(P), ms, flops / (ms * 1e6));
  return 0;
}
