// Rollout throughput of continuous batching (model/scheduler.h) against the former static
// batching, on the CPU backend: a random Llama, prompts of mixed lengths, K samples each, EOS ids
// chosen so that responses stop at widely different lengths (the per-step EOS chance is about
// eos/V on a near-uniform random model). The same running-set size for all three:
//   per call  - one generate() call per `batch` prompts (what the rollout stage did: each call
//               prefills its prompts and decodes until all of their samples have finished);
//   drain     - one call, drain_batch: the scheduler refills only an emptied running set;
//   continuous- one call: finished samples leave and waiting prompts join at every step.
// Every mode must produce the same generations (checked). Prints new tokens/s, the median of
// --repeat rounds, and the scheduler's steps. Threads: OMP_NUM_THREADS.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "backend/backend.h"
#include "bench_args.h"
#include "bench_rollout_setup.h"
#include "model/generate.h"
#include "model/llama_model.h"

using namespace sppo;

int main(int argc, char** argv) {
  sppo_bench::Args a(argc, argv,
                     "bench_generate: rollout tokens/s, continuous batching vs drain-the-batch (CPU backend)",
                     {{"layers", 4}, {"hidden", 256}, {"vocab", 8192}, {"prompts", 48}, {"batch", 8}, {"k", 4},
                      {"min-prompt", 16}, {"max-prompt", 96}, {"new", 160}, {"eos", 160}, {"repeat", 3}});
  const LlamaConfig c = sppo_bench::rollout_llama(a);
  LlamaModel m(backend_for(Device::CPU), c, Precision::FP32);
  m.init_random(1, 0.02);
  const int64_t np = a["prompts"], batch = a["batch"], K = a["k"], repeat = std::max<long long>(1, a["repeat"]);
  const sppo_bench::RolloutPrompts rp = sppo_bench::rollout_prompts(a, c.vocab_size, 7);
  const std::vector<std::vector<int32_t>>& prompts = rp.tokens;
  const std::vector<uint64_t>& seeds = rp.seeds;
  GenerateOptions o = sppo_bench::rollout_options(a, c.vocab_size);
  o.max_running_sequences = batch * K;
  sppo_bench::print_device();
  std::printf("model: V=%lld H=%lld L=%lld; %lld prompts of %lld..%lld tokens, K=%lld, <= %lld new tokens, %lld EOS ids, "
              "running set %lld samples (%lld prompts)\n",
              (long long)c.vocab_size, (long long)c.hidden_size, (long long)c.num_layers, (long long)np,
              (long long)a["min-prompt"], (long long)a["max-prompt"], (long long)K, (long long)o.max_new_tokens,
              (long long)a["eos"], (long long)(batch * K), (long long)batch);

  std::vector<Generation> ref;
  auto per_call = [&](GenerateStats& st) {
    std::vector<Generation> out;
    st = GenerateStats();
    for (int64_t b = 0; b < np; b += batch) {
      const int64_t e = std::min(np, b + batch);
      std::vector<std::vector<int32_t>> p(prompts.begin() + b, prompts.begin() + e);
      std::vector<uint64_t> s(seeds.begin() + b, seeds.begin() + e);
      GenerateStats one;
      GenerateOptions x = o;
      x.max_running_sequences = 0;  // the call's whole batch at once, as before
      auto gen = generate(m, p, K, s, x, &one);
      out.insert(out.end(), gen.begin(), gen.end());
      st.steps += one.steps;
    }
    return out;
  };
  auto one_call = [&](bool drain, GenerateStats& st) {
    GenerateOptions x = o;
    x.drain_batch = drain;
    return generate(m, prompts, K, seeds, x, &st);
  };
  // Rounds interleave the modes (per call, drain, continuous, per call, ...) so that a busy
  // machine slows all of them alike; each mode's median over the rounds is reported.
  const char* names[3] = {"per call", "drain", "continuous"};
  std::vector<double> secs[3];
  GenerateStats stats[3];
  int64_t toks = 0;
  for (int64_t r = 0; r <= repeat; ++r)  // round 0 warms up
    for (int md = 0; md < 3; ++md) {
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<Generation> gen = md == 0 ? per_call(stats[md]) : one_call(md == 1, stats[md]);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r > 0) secs[md].push_back(s);
      if (ref.empty()) {
        ref = gen;
        int64_t eos = 0;
        for (auto& x : gen) toks += static_cast<int64_t>(x.tokens.size()), eos += x.stopped_at_eos;
        std::printf("%lld new tokens; %lld of %zu samples stop at EOS; median of %lld rounds\n", (long long)toks,
                    (long long)eos, gen.size(), (long long)repeat);
      }
      for (size_t i = 0; i < gen.size(); ++i)
        if (gen[i].tokens != ref[i].tokens ||
            std::memcmp(gen[i].logprobs.data(), ref[i].logprobs.data(), gen[i].logprobs.size() * sizeof(float)) != 0) {
          std::fprintf(stderr, "bench_generate: mode '%s' changed generation %zu\n", names[md], i);
          return 1;
        }
    }
  std::printf("\n%-12s %10s %12s %8s %8s %10s\n", "mode", "seconds", "tokens/s", "steps", "joins", "speedup");
  double base = 0;
  for (int md = 0; md < 3; ++md) {
    std::sort(secs[md].begin(), secs[md].end());
    const double med = secs[md][secs[md].size() / 2], rate = static_cast<double>(toks) / med;
    if (md == 0) base = rate;
    std::printf("%-12s %10.3f %12.1f %8lld %8lld %9.2fx\n", names[md], med, rate, (long long)stats[md].steps,
                (long long)stats[md].joins_while_running, rate / base);
  }
  return 0;
}
