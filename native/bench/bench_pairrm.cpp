// Throughput of the PairRM judge's model on the CPU backend: all K(K-1) ordered pairs of K
// candidates for each of `prompts` prompts, packed `batch` pairs per call, as the pairrm judge
// runs them. Weights are random (init_random) in PairRM's shape unless the options shrink it;
// token ids are random and each pair is [CLS] <s> source [SEP] [CLS] <c1> y_i [SEP] [CLS] <c2> y_j [SEP].
// Prints pairs/s, tokens/s and the achieved GFLOP/s (2 flops per multiply-add of the encoder's
// matrices and attention, the relative projections and the head), after one warm-up call.
//   bench_pairrm [--k 5] [--prompts 1] [--source 128] [--candidate 256] [--batch 4]
//                [--layers 24] [--hidden 1024] [--heads 16] [--ffn 4096] [--vocab 128005] [--buckets 256]
#include <chrono>
#include <ctime>
#include <cstdio>
#include <vector>

#include "backend/backend.h"
#include "bench_args.h"
#include "model/pairrm_model.h"

using namespace sppo;

int main(int argc, char** argv) {
  const sppo_bench::Args a(argc, argv, "bench_pairrm: K(K-1) ordered pairs per prompt through PairRmModel::compare",
                           {{"k", 5},        {"prompts", 1},   {"source", 128},  {"candidate", 256},
                            {"batch", 4},    {"layers", 24},   {"hidden", 1024}, {"heads", 16},
                            {"ffn", 4096},   {"vocab", 128005}, {"buckets", 256}});
  const int64_t K = a["k"], prompts = a["prompts"], src = a["source"], cand = a["candidate"], batch = a["batch"];
  if (K < 2 || prompts < 1 || src < 1 || cand < 1 || batch < 1)
    return std::fprintf(stderr, "--k must be >= 2; --prompts, --source, --candidate and --batch >= 1\n"), 2;
  PairRmConfig c;
  c.num_layers = a["layers"];
  c.hidden_size = a["hidden"];
  c.num_heads = a["heads"];
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  c.intermediate_size = a["ffn"];
  c.vocab_size = a["vocab"];
  c.position_buckets = a["buckets"];
  c.max_relative_positions = 2 * c.position_buckets;
  try {
    const auto t_load = std::chrono::steady_clock::now();
    PairRmModel m(backend_for(Device::CPU), c, Precision::FP32);
    m.init_random(1, 0.02);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
    // One prompt's pairs (every prompt has the same shape here).
    const int64_t L = (src + 3) + 2 * (cand + 3);
    std::vector<int32_t> tokens, lengths, slots;
    uint64_t r = 12345;
    auto id = [&] {
      r = r * 6364136223846793005ull + 1442695040888963407ull;
      return static_cast<int32_t>((r >> 33) % static_cast<uint64_t>(c.vocab_size));
    };
    const int64_t pairs = prompts * K * (K - 1);
    for (int64_t p = 0; p < pairs; ++p) {
      for (int64_t t = 0; t < L; ++t) tokens.push_back(id());
      lengths.push_back(static_cast<int32_t>(L));
      slots.insert(slots.end(), {1, static_cast<int32_t>(src + 4), static_cast<int32_t>(src + 3 + cand + 4)});
    }
    std::vector<float> out(static_cast<size_t>(pairs));
    auto run = [&](int64_t p0, int64_t n) {
      PairBatch b{n, lengths.data() + p0, tokens.data() + p0 * L, slots.data() + 3 * p0};
      m.compare(b, Tensor(out.data() + p0, DType::F32, n));
    };
    run(0, std::min(batch, pairs));  // warm-up: allocations, page faults
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    for (int64_t p0 = 0; p0 < pairs; p0 += batch) run(p0, std::min(batch, pairs - p0));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Process CPU time (all threads): per CPU-second figures stay comparable on a busy machine.
    const double cpu_s = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    const double H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim, nh = c.num_heads;
    const double rows = std::min<double>(2.0 * c.position_buckets, 2.0 * L - 1);
    const double per_pair = c.num_layers * (2.0 * L * (4 * H * H + 2 * H * I) + nh * 2.0 * (2.0 * L * L * hd + 2.0 * L * rows * hd)) +
                            2.0 * 2.0 * (2 * H * H + H);
    const double per_call = c.num_layers * 2.0 * 2.0 * rows * H * H;  // relative projections, once per call
    const double flops = pairs * per_pair + static_cast<double>((pairs + batch - 1) / batch) * per_call;
    sppo_bench::print_device();
    std::printf("PairRM f32: %lld layers, hidden %lld, %lld heads, ffn %lld, vocab %lld (weights %.2f GiB, %.1f s to "
                "allocate and randomize)\n",
                static_cast<long long>(c.num_layers), static_cast<long long>(c.hidden_size),
                static_cast<long long>(c.num_heads), static_cast<long long>(c.intermediate_size),
                static_cast<long long>(c.vocab_size), m.memory_plan(1, 1).weights / 1073741824.0, load_s);
    std::printf("K = %lld, %lld prompt(s): %lld ordered pairs of %lld tokens (source %lld, candidates %lld), %lld "
                "pairs per call\n",
                static_cast<long long>(K), static_cast<long long>(prompts), static_cast<long long>(pairs),
                static_cast<long long>(L), static_cast<long long>(src), static_cast<long long>(cand),
                static_cast<long long>(batch));
    std::printf("%.2f s: %.3f pairs/s, %.0f tokens/s, %.1f GFLOP/s (%.1f s per prompt of K = %lld)\n", s, pairs / s,
                pairs * L / s, flops / (s * 1e9), s / prompts, static_cast<long long>(K));
    std::printf("CPU time %.2f s (%.2f threads busy on average): %.3f pairs per CPU-second, %.1f GFLOP per CPU-second\n",
                cpu_s, cpu_s / s, pairs / cpu_s, flops / (cpu_s * 1e9));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_pairrm: %s\n", e.what());
    return 1;
  }
}
