// Rollout throughput under a fixed KV pool (model/scheduler.h), on the CPU backend: admitting a
// prompt only when the worst case of its K samples fits (max_swap_tokens 0, the former policy)
// against overcommitting the pool by what finished prompts used, with preemption by swapping to
// host memory (the default). The regime of an SPPO rollout: max_new_tokens far above what most responses use, so
// the worst case reserves mostly blocks that are never written. A random Llama, prompts of mixed
// lengths, EOS ids chosen so that responses stop at widely different lengths (the per-step EOS
// chance is about eos/V). Both modes must produce the same generations (checked). Prints new
// tokens/s (the median of --repeat rounds), steps, samples at once, preemptions and blocks moved.
// Threads: OMP_NUM_THREADS.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "backend/backend.h"
#include "bench_args.h"
#include "bench_rollout_setup.h"
#include "model/generate.h"
#include "model/kv_cache.h"
#include "model/llama_model.h"

using namespace sppo;

int main(int argc, char** argv) {
  sppo_bench::Args a(argc, argv,
                     "bench_kv_admission: rollout tokens/s in a fixed KV pool, worst-case admission vs on demand with "
                     "preemption (CPU backend)",
                     {{"layers", 4}, {"hidden", 256}, {"vocab", 8192}, {"prompts", 64}, {"k", 4}, {"min-prompt", 16},
                      {"max-prompt", 96}, {"new", 512}, {"eos", 64}, {"pool-prompts", 4}, {"repeat", 3}});
  const LlamaConfig c = sppo_bench::rollout_llama(a);
  LlamaModel m(backend_for(Device::CPU), c, Precision::FP32);
  m.init_random(1, 0.02);
  const int64_t np = a["prompts"], K = a["k"], repeat = std::max<long long>(1, a["repeat"]);
  const sppo_bench::RolloutPrompts rp = sppo_bench::rollout_prompts(a, c.vocab_size, 11);
  const std::vector<std::vector<int32_t>>& prompts = rp.tokens;
  const std::vector<uint64_t>& seeds = rp.seeds;
  GenerateOptions o = sppo_bench::rollout_options(a, c.vocab_size);
  // The pool: the worst case of `pool-prompts` of the longest prompts.
  const int64_t worst = KVCache::blocks_needed({a["max-prompt"]}, K, o.max_new_tokens, 16);
  o.max_cache_tokens = a["pool-prompts"] * worst * 16;
  sppo_bench::print_device();
  std::printf("model: V=%lld H=%lld L=%lld; %lld prompts of %lld..%lld tokens, K=%lld, <= %lld new tokens, %lld EOS ids; "
              "KV pool %lld blocks (the worst case of %lld prompts)\n",
              (long long)c.vocab_size, (long long)c.hidden_size, (long long)c.num_layers, (long long)np,
              (long long)a["min-prompt"], (long long)a["max-prompt"], (long long)K, (long long)o.max_new_tokens,
              (long long)a["eos"], (long long)(o.max_cache_tokens / 16), (long long)a["pool-prompts"]);

  // Rounds interleave the modes so that a busy machine slows both alike; round 0 warms up.
  const char* names[2] = {"worst case", "past it"};
  std::vector<double> secs[2];
  GenerateStats stats[2];
  std::vector<Generation> ref;
  int64_t toks = 0;
  for (int64_t r = 0; r <= repeat; ++r)
    for (int md = 0; md < 2; ++md) {
      GenerateOptions x = o;
      x.max_swap_tokens = md == 0 ? 0 : -1;
      const auto t0 = std::chrono::steady_clock::now();
      const std::vector<Generation> gen = generate(m, prompts, K, seeds, x, &stats[md]);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r > 0) secs[md].push_back(s);
      if (ref.empty()) {
        ref = gen;
        int64_t eos = 0;
        for (auto& y : gen) toks += static_cast<int64_t>(y.tokens.size()), eos += y.stopped_at_eos;
        std::printf("%lld new tokens (%.0f a sample of at most %lld); %lld of %zu samples stop at EOS; median of %lld rounds\n",
                    (long long)toks, static_cast<double>(toks) / static_cast<double>(gen.size()),
                    (long long)o.max_new_tokens, (long long)eos, gen.size(), (long long)repeat);
      }
      for (size_t i = 0; i < gen.size(); ++i)
        if (gen[i].tokens != ref[i].tokens ||
            std::memcmp(gen[i].logprobs.data(), ref[i].logprobs.data(), gen[i].logprobs.size() * sizeof(float)) != 0) {
          std::fprintf(stderr, "bench_kv_admission: mode '%s' changed generation %zu\n", names[md], i);
          return 1;
        }
    }
  std::printf("\n%-11s %9s %10s %7s %8s %11s %12s %8s\n", "mode", "seconds", "tokens/s", "steps", "at once",
              "peak blocks", "preemptions", "speedup");
  double base = 0;
  for (int md = 0; md < 2; ++md) {
    std::sort(secs[md].begin(), secs[md].end());
    const double med = secs[md][secs[md].size() / 2], rate = static_cast<double>(toks) / med;
    if (md == 0) base = rate;
    const GenerateStats& st = stats[md];
    std::printf("%-11s %9.3f %10.1f %7lld %8lld %5lld/%-5lld %5lld (%lld blocks) %6.2fx\n", names[md], med, rate,
                (long long)st.steps, (long long)st.peak_running, (long long)st.peak_blocks_in_use,
                (long long)st.kv_blocks, (long long)st.preemptions, (long long)st.swapped_out_blocks, rate / base);
  }
  return 0;
}
