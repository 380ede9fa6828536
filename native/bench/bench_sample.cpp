// Benchmark of next-token choice (kernels/sample.h) on the CPU backend, on a Llama-3-sized
// vocabulary: the tempered weights, greedy argmax, and the integer pick with no truncation,
// top-k and top-p (nucleus).
//   bench_sample [--rows 16] [--vocab 128256] [--top-k 50] [--top-p-pct 90]
//                [common flags, see --help]
// Floor: the bytes moved at the copy bandwidth: sample_weights reads logits and writes weights;
// argmax and sample_pick read each row once (the pick's validation and its passes over q are
// extra work the floor does not count).
#include "bench_common.h"

using namespace sppo;
using namespace sppo_bench;

int main(int argc, char** argv) {
  return run_main("bench_sample", [&] {
    Args a(argc, argv, "usage: bench_sample [--rows 16] [--vocab 128256] [--top-k 50] [--top-p-pct 90]",
           "Times sample_weights, argmax_rows and sample_pick (plain, top-k, top-p = pct / 100);"
           " the floor is the bytes moved at the copy bandwidth.");
    const int64_t n = a.integer("--rows", 16), V = a.integer("--vocab", 128256), top_k = a.integer("--top-k", 50),
                  pct = a.integer("--top-p-pct", 90);
    a.finish(10);
    if (pct > 100) fail("--top-p-pct must be in [1, 100] (got ", pct, ")");
    const Floors f = measure_floors("sample (weights, argmax, pick)");
    auto be = backend_for(Device::CPU);
    std::vector<float> logits = values(n * V), w(n * V), logp(n);
    for (auto& x : logits) x *= 8.f;  // a spread like a model's: most weights far below the top
    std::vector<int32_t> tokens(n);
    std::vector<SampleStream> streams(n);
    for (int64_t r = 0; r < n; ++r) streams[r] = {1234, uint64_t(r), 0};
    const double bytes = 4.0 * double(n) * double(V);
    const std::string shape = dims({n, V});
    double ms = time_ms(a, [&] { be->sample_weights(f32(logits), n, V, 0.7, f32(w)); });
    row(f, "sample_weights", shape, ms, Bound::Memory, 2 * bytes);
    ms = time_ms(a, [&] { be->argmax_rows(f32(logits), n, V, i32(tokens)); });
    row(f, "argmax_rows", shape, ms, Bound::Memory, bytes);
    const double top_p = double(pct) / 100;
    const struct {
      const char* name;
      int64_t k;
      double p;
    } picks[] = {{"sample_pick", 0, 1.0}, {"sample_pick top-k", top_k, 1.0}, {"sample_pick top-p", 0, top_p}};
    for (const auto& c : picks) {
      ms = time_ms(a, [&] {
        for (auto& s : streams) ++s.step;
        be->sample_pick(f32(w), n, V, c.k, c.p, streams.data(), i32(tokens), f32(logp));
      });
      row(f, c.name, shape, ms, Bound::Memory, bytes);
    }
  });
}
