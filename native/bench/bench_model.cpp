// CPU throughput of the Llama model: a training step on the SPPO loss (forward + backward of
// chosen and rejected, clip, RMSprop; tokens/s), sequence log-probabilities (forward only),
// batched KV-cache generation (new tokens/s), and the rollout prefill shared by K samples against
// K separate prefills. Prints a table; wall-clock medians after one warm-up.
//   bench_model [--layers N] [--hidden H] [--heads N] [--kv-heads N] [--ffn I] [--vocab V]
//               [--batch B] [--seq T] [--new N] [--k K] [--tied 0|1] [--repeat R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "backend/backend.h"
#include "comm/communicator.h"
#include "model/generate.h"
#include "model/llama_model.h"
#include "train/trainer.h"

using namespace sppo;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// Process CPU time (all threads): tokens per CPU-second stays comparable on a busy machine.
double cpu_now() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

struct Sides {
  std::vector<int32_t> tok;
  std::vector<uint8_t> mask, resp;
  TokenBatch view(int64_t B, int64_t T) const { return TokenBatch{B, T, tok.data(), mask.data(), resp.data()}; }
};

Sides make_side(std::mt19937_64& g, int64_t B, int64_t T, int64_t V) {
  Sides s;
  s.tok.resize(B * T);
  s.mask.assign(B * T, 1);
  s.resp.assign(B * T, 0);
  for (auto& t : s.tok) t = static_cast<int32_t>(g() % V);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = T / 4; t < T; ++t) s.resp[b * T + t] = 1;  // a quarter prompt, the rest response
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t layers = 4, hidden = 256, batch = 4, seq = 128, new_tokens = 32, repeat = 3, vocab = 8192, heads = -1,
          kv_heads = -1, ffn = -1, k = 5, tied = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      std::printf(
          "bench_model [--layers 4] [--hidden 256] [--heads H/32] [--kv-heads heads/2] [--ffn 11H/4] [--vocab 8192]\n"
          "            [--batch 4] [--seq 128] [--new 32] [--k 5] [--tied 0] [--repeat 3]\n"
          "A random Llama on the CPU backend: SPPO train steps (batch pairs x 2 x seq tokens), sequence\n"
          "log-probs, KV-cache generation, and the rollout prefill shared by K samples vs K prefills.\n");
      return 0;
    }
  }
  if ((argc - 1) % 2 != 0) {
    std::fprintf(stderr, "bench_model: options take one value each (see --help)\n");
    return 2;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int64_t v = std::atoll(argv[i + 1]);
    if (a == "--layers") layers = v;
    else if (a == "--hidden") hidden = v;
    else if (a == "--batch") batch = v;
    else if (a == "--seq") seq = v;
    else if (a == "--new") new_tokens = v;
    else if (a == "--repeat") repeat = v;
    else if (a == "--vocab") vocab = v;
    else if (a == "--heads") heads = v;
    else if (a == "--kv-heads") kv_heads = v;
    else if (a == "--ffn") ffn = v;
    else if (a == "--k") k = v;
    else if (a == "--tied") tied = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  LlamaConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = ffn > 0 ? ffn : hidden * 11 / 4;
  c.num_layers = layers;
  c.num_heads = heads > 0 ? heads : hidden / 32;
  c.num_kv_heads = kv_heads > 0 ? kv_heads : std::max<int64_t>(1, c.num_heads / 2);
  c.head_dim = hidden / c.num_heads;
  c.rope_theta = 500000;
  c.tie_word_embeddings = tied != 0;
  LlamaModel m(backend_for(Device::CPU), c, Precision::FP32);
  m.init_random(1, 0.02);
  const int64_t nparams = m.layout().count();
  std::printf("config: V=%lld H=%lld I=%lld L=%lld heads=%lld/%lld params=%.1fM threads=%d\n", (long long)c.vocab_size,
              (long long)c.hidden_size, (long long)c.intermediate_size, (long long)c.num_layers,
              (long long)c.num_heads, (long long)c.num_kv_heads, nparams / 1e6, cpu_threads());

  std::mt19937_64 g(7);
  Sides ch = make_side(g, batch, seq, c.vocab_size), rj = make_side(g, batch, seq, c.vocab_size);
  std::vector<float> refc(batch, -100.f), refr(batch, -100.f), pw(batch, 0.7f), pl(batch, 0.3f), pwl(batch, 0.6f);
  PairBatch pb{ch.view(batch, seq), rj.view(batch, seq), refc.data(), refr.data(), pwl.data(), pw.data(), pl.data()};
  Trainer trainer(m, make_local_communicator(m.backend_ptr()), TrainerOptions());

  std::printf("\n%-34s %10s %12s %14s\n", "benchmark", "seconds", "tokens/s", "tokens/cpu-s");
  double cpu0 = 0;
  // secs and cpu_secs cover the same work as toks (train steps: one step, the median wall time
  // and the mean CPU time; the others: the whole timed loop).
  auto row = [&](const char* name, double secs, double toks, double cpu_secs) {
    std::printf("%-34s %10.3f %12.1f %14.1f\n", name, secs, toks / secs, toks / cpu_secs);
  };
  for (bool ckpt : {false, true}) {
    m.set_gradient_checkpointing(ckpt);
    trainer.accumulate(pb, LossType::SPPO, 1e-3, 1.0);  // warm-up
    trainer.step(5e-7, 1.0);
    std::vector<double> ts;
    cpu0 = cpu_now();
    int64_t toks = 0;
    for (int64_t r = 0; r < repeat; ++r) {
      const double t0 = now();
      toks = trainer.accumulate(pb, LossType::SPPO, 1e-3, 1.0).tokens;
      trainer.step(5e-7, 1.0);
      ts.push_back(now() - t0);
    }
    std::sort(ts.begin(), ts.end());
    const double cpu_per_step = (cpu_now() - cpu0) / static_cast<double>(repeat);
    row(ckpt ? "train step (checkpointing)" : "train step", ts[ts.size() / 2], static_cast<double>(toks), cpu_per_step);
  }
  {
    std::vector<float> lp(batch);
    double t0 = now();
    cpu0 = cpu_now();
    for (int64_t r = 0; r < repeat; ++r) m.sequence_logprobs(ch.view(batch, seq), Tensor(lp.data(), DType::F32, batch));
    row("sequence log-probs (forward)", now() - t0, static_cast<double>(repeat * batch * seq), cpu_now() - cpu0);
  }
  {
    std::vector<std::vector<int32_t>> prompts;
    std::vector<uint64_t> seeds;
    for (int64_t i = 0; i < 2 * batch; ++i) {
      prompts.emplace_back(ch.tok.begin() + (i % batch) * seq, ch.tok.begin() + (i % batch) * seq + seq / 4);
      seeds.push_back(static_cast<uint64_t>(i));
    }
    GenerateOptions o;
    o.max_new_tokens = new_tokens;
    o.temperature = 0.7;
    o.top_p = 0.9;
    double t0 = now();
    cpu0 = cpu_now();
    auto gen = generate(m, prompts, 1, seeds, o);
    const double secs = now() - t0;
    int64_t toks = 0;
    for (auto& x : gen) toks += static_cast<int64_t>(x.tokens.size());
    char name[64];
    std::snprintf(name, sizeof name, "generate (%lld prompts, KV cache)", (long long)prompts.size());
    row(name, secs, static_cast<double>(toks), cpu_now() - cpu0);
    // The rollout's prefill: K samples of each prompt from one prefill, against K calls of one
    // sample each (K prefills). One new token, so the prefill dominates.
    std::vector<std::vector<int32_t>> long_prompts;
    for (int64_t i = 0; i < batch; ++i) long_prompts.emplace_back(ch.tok.begin() + i * seq, ch.tok.begin() + (i + 1) * seq);
    std::vector<uint64_t> few(seeds.begin(), seeds.begin() + batch);
    GenerateOptions one = o;
    one.max_new_tokens = 1;
    t0 = now();
    cpu0 = cpu_now();
    generate(m, long_prompts, k, few, one);
    std::snprintf(name, sizeof name, "rollout prefill, K=%lld shared", (long long)k);
    row(name, now() - t0, static_cast<double>(batch * k * seq), cpu_now() - cpu0);
    t0 = now();
    cpu0 = cpu_now();
    for (int64_t r = 0; r < k; ++r) generate(m, long_prompts, 1, few, one);
    std::snprintf(name, sizeof name, "rollout prefill, %lld separate", (long long)k);
    row(name, now() - t0, static_cast<double>(batch * k * seq), cpu_now() - cpu0);
  }
  return 0;
}
