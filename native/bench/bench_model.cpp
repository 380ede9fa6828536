// Throughput of the Llama model, on the CPU backend (default) or the CUDA backend (--device cuda).
//
// CPU: a training step on the SPPO loss (forward + backward of chosen and rejected, clip,
// RMSprop; tokens/s), sequence log-probabilities (forward only), batched KV-cache generation (new
// tokens/s), and the rollout prefill shared by K samples against K separate prefills. Prints a
// table; wall-clock medians after one warm-up.
//
// CUDA (--precision fp32, the engine's parity mode, or bf16, its fast mode): the same train step
// and log-probs, the rollout (prompts x prompt-len + new tokens, sampling, no EOS so every sample
// runs to the end) and one decode step at each --decode-batches size over a cache of --ctx
// positions. Each row gives the median of --repeat after --warmup, tokens/s, the device memory in
// use at the phase's peak, and the floor: model FLOPs over the matmul rate of the compute type
// measured in the same run (cuBLASLt with CUBLAS_COMPUTE_32F: no TF32 for fp32, tensor cores for
// bf16), or the bytes a decode step must read over the measured copy bandwidth (and over the
// issues' 4.3 TB/s). Timing: train step, log-probs and rollout download results inside the call,
// so they are host wall clock up to synchronize(); the decode step downloads nothing and is device
// time between CUDA events on the backend's stream (both are printed for every row). The decode
// row also times the same step bucketed (model/decode_buckets.h, bucket = batch: no padding) with
// eager launches (SPPO_CUDA_GRAPHS=0) and replayed as a CUDA graph: columns 'bucket eager ms',
// 'graph ms' and the graph's gain over the eager step (JSON: eagerBucketMs, graphMs, graphGain). --preset
// names the issues' shapes; the memory planner (train/memory_plan.h) picks the largest micro-batch
// up to --batch that fits, and --plan-only 1 prints the plans without allocating (works without a
// GPU).
//   bench_model [--device cpu|cuda] [--preset llama-1b|mistral-7b|llama-8b] [--layers N] [--hidden H]
//               [--heads N] [--kv-heads N] [--ffn I] [--vocab V] [--batch B] [--seq T] [--new N] [--k K]
//               [--tied 0|1] [--repeat R] [--warmup W] [--optimizer rmsprop|adamw] [--checkpointing 0|1|both]
//               [--only train,logprobs,generate,prefill,rollout,decode] [--prompts P] [--prompt-len L]
//               [--decode-batches 1,64] [--ctx C] [--plan-only 0|1] [--memory-gib G] [--precision fp32|bf16]
//               [--gradient-dtype fp32|bf16] [--json FILE]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/buffer.h"
#include "bench_flags.h"
#include "bench_json.h"
#include "bench_model_cuda.h"
#include "bench_model_presets.h"
#include "bench_smoke.h"
#include "comm/communicator.h"
#include "core/device.h"
#include "core/error.h"
#include "core/parallel.h"
#include "model/decode_buckets.h"
#include "model/generate.h"
#include "model/kv_cache.h"
#include "model/llama_model.h"
#include "train/memory_plan.h"
#include "train/trainer.h"

using namespace sppo;
using sppo_bench::parse_int;
using sppo_bench::split_list;
using sppo_bench::JsonRow;
using sppo_bench::ModelPreset;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// Process CPU time (all threads): tokens per CPU-second stays comparable on a busy machine.
double cpu_now() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

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

struct Options {
  std::string device = "cpu", preset, optimizer, only, ckpt, json;
  Precision precision = Precision::FP32;  // fp32 (the parity mode) or bf16 (CUDA, or plans)
  std::optional<DType> grad_dtype;        // --gradient-dtype bf16: the trainer's bf16 gradient buffers
  std::map<std::string, int64_t> ints;
  std::vector<int64_t> decode_batches;
  bool plan_only = false;
  double memory_gib = 0;  // --plan-only: the memory to plan against (default: the device's)
  bool has(const std::string& k) const { return ints.count(k) > 0; }
  int64_t get(const std::string& k, int64_t def) const { return has(k) ? ints.at(k) : def; }
};

void usage() {
  std::printf(
      "bench_model [--device cpu|cuda] [--preset llama-1b|mistral-7b|llama-8b]\n"
      "            [--layers 4] [--hidden 256] [--heads H/32] [--kv-heads heads/2] [--ffn 11H/4] [--vocab 8192]\n"
      "            [--batch 4] [--seq 128] [--new 32] [--k 5] [--tied 0] [--repeat 3] [--warmup 1]\n"
      "            [--optimizer rmsprop|adamw] [--checkpointing 0|1|both] [--only PHASES]\n"
      "            [--prompts P] [--prompt-len L] [--decode-batches 1,64] [--ctx 512]\n"
      "            [--plan-only 0|1] [--memory-gib G] [--precision fp32|bf16] [--json FILE]\n"
      "            [--gradient-dtype fp32|bf16]\n"
      "A random Llama. CPU: SPPO train steps (batch pairs x 2 x seq tokens), sequence log-probs, KV-cache\n"
      "generation, and the rollout prefill shared by K samples vs K prefills (phases\n"
      "train,logprobs,generate,prefill). CUDA (fp32): train, logprobs, rollout (prompts x prompt-len + new,\n"
      "sampling, no EOS) and one decode step per --decode-batches size over --ctx cached positions, each\n"
      "with tokens/s, peak device memory and its floor. --preset sets the issues' shapes; the memory\n"
      "planner picks the largest micro-batch up to --batch that fits; --plan-only 1 prints the plans only.\n"
      "--precision bf16 (CUDA and plans): bf16 weights, activations and KV cache, fp32 master weights,\n"
      "gradients and optimizer state; floors use the bf16 matmul rate measured in the same run.\n"
      "--gradient-dtype bf16 (with --precision bf16): the trainer's gradient buffers in bf16.\n");
}

Options parse(int argc, char** argv) {
  Options o;
  static const char* kInts[] = {"layers", "hidden", "heads", "kv-heads", "ffn",    "vocab",      "batch", "seq",
                                "new",    "k",      "tied",  "repeat",   "warmup", "prompts", "prompt-len", "ctx"};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    }
    if (a.rfind("--", 0) != 0) fail("unexpected argument '", a, "' (see --help)");
    if (i + 1 >= argc) fail(a, " needs a value (see --help)");
    const std::string k = a.substr(2), v = argv[++i];
    if (k == "device") o.device = v;
    else if (k == "preset") o.preset = v;
    else if (k == "optimizer") o.optimizer = v;
    else if (k == "only") o.only = v;
    else if (k == "checkpointing") o.ckpt = v;
    else if (k == "json") o.json = v;
    else if (k == "precision") {
      if (v == "fp32") o.precision = Precision::FP32;
      else if (v == "bf16") o.precision = Precision::BF16;
      else fail("--precision must be fp32 or bf16 (got '", v, "')");
    }
    else if (k == "gradient-dtype") {
      if (v == "bf16") o.grad_dtype = DType::BF16;
      else if (v != "fp32") fail("--gradient-dtype must be fp32 or bf16 (got '", v, "')");
    }
    else if (k == "plan-only") o.plan_only = parse_int(a, v, 0) != 0;
    else if (k == "memory-gib") o.memory_gib = static_cast<double>(parse_int(a, v, 1));
    else if (k == "decode-batches") {
      for (auto& x : split_list(v)) o.decode_batches.push_back(parse_int(a, x, 1));
      if (o.decode_batches.empty()) fail("--decode-batches needs a list of batch sizes, e.g. 1,64");
    } else if (std::find_if(std::begin(kInts), std::end(kInts), [&](const char* n) { return k == n; }) !=
               std::end(kInts)) {
      o.ints[k] = parse_int(a, v, k == "tied" || k == "warmup" ? 0 : 1);
    } else {
      fail("unknown option ", a, " (see --help)");
    }
  }
  if (o.device != "cpu" && o.device != "cuda") fail("--device must be cpu or cuda (got '", o.device, "')");
  if (!o.optimizer.empty() && o.optimizer != "rmsprop" && o.optimizer != "adamw")
    fail("--optimizer must be rmsprop or adamw (got '", o.optimizer, "')");
  if (!o.ckpt.empty() && o.ckpt != "0" && o.ckpt != "1" && o.ckpt != "both")
    fail("--checkpointing must be 0, 1 or both (got '", o.ckpt, "')");
  return o;
}

// The shape and settings: a preset, then explicit flags over it.
ModelPreset resolve(const Options& o) {
  ModelPreset p;
  if (!o.preset.empty()) {
    p = sppo_bench::model_preset(o.preset);
  } else {
    p.name = "custom";
    p.config.rope_theta = 500000;
    p.phases = o.device == "cuda" ? "train,logprobs,rollout,decode" : "train,logprobs,generate,prefill";
    p.pairs = 4, p.seq = 128, p.new_tokens = 32, p.prompts = 8, p.prompt_len = 32;
  }
  LlamaConfig& c = p.config;
  const bool custom = o.preset.empty();
  const int64_t hidden = o.get("hidden", custom ? 256 : c.hidden_size);
  if (custom || o.has("hidden")) {
    c.hidden_size = hidden;
    c.num_heads = o.get("heads", hidden / 32);
    c.num_kv_heads = o.get("kv-heads", std::max<int64_t>(1, c.num_heads / 2));
    c.intermediate_size = o.get("ffn", hidden * 11 / 4);
  } else {
    c.num_heads = o.get("heads", c.num_heads);
    c.num_kv_heads = o.get("kv-heads", c.num_kv_heads);
    c.intermediate_size = o.get("ffn", c.intermediate_size);
  }
  c.head_dim = c.hidden_size / c.num_heads;
  c.num_layers = o.get("layers", custom ? 4 : c.num_layers);
  c.vocab_size = o.get("vocab", custom ? 8192 : c.vocab_size);
  c.tie_word_embeddings = o.get("tied", c.tie_word_embeddings ? 1 : 0) != 0;
  p.pairs = o.get("batch", p.pairs);
  p.seq = o.get("seq", p.seq);
  p.new_tokens = o.get("new", p.new_tokens);
  p.prompts = o.get("prompts", p.prompts);
  p.prompt_len = o.get("prompt-len", p.prompt_len);
  p.decode_ctx = o.get("ctx", p.decode_ctx);
  if (!o.decode_batches.empty()) p.decode_batches = o.decode_batches;
  if (!o.optimizer.empty()) p.optimizer = parse_optimizer_kind(o.optimizer);
  if (!o.only.empty()) p.phases = o.only;
  else if (o.device == "cpu" && !o.plan_only) p.phases = "train,logprobs,generate,prefill";  // a preset's shape on the CPU
  // The CPU table and the CUDA rows are different sets (the CPU keeps its historical rows).
  const std::vector<std::string> known = o.plan_only ? std::vector<std::string>{"train", "logprobs", "rollout", "decode", "generate", "prefill"}
                                         : o.device == "cuda" ? std::vector<std::string>{"train", "logprobs", "rollout", "decode"}
                                                              : std::vector<std::string>{"train", "logprobs", "generate", "prefill"};
  for (auto& x : split_list(p.phases))
    if (std::find(known.begin(), known.end(), x) == known.end())
      fail("--only: '", x, "' is not a phase on ", o.device, " (", o.device == "cuda" ? "train, logprobs, rollout, decode" : "train, logprobs, generate, prefill", ")");
  validate_config(c);
  return p;
}

bool wants(const ModelPreset& p, const std::string& phase) {
  for (auto& x : split_list(p.phases))
    if (x == phase) return true;
  return false;
}

double gib(double bytes) { return bytes / double(1ull << 30); }

void print_plan(const StagePlan& plan) {
  std::printf("  plan %-10s %8.2f GiB:", plan.stage.c_str(), gib(static_cast<double>(plan.total())));
  for (auto& it : plan.items) std::printf(" %s %.2f", it.name.c_str(), gib(static_cast<double>(it.bytes)));
  std::printf(" (GiB)\n");
}

// The largest micro-batch of at most `pairs` whose training plan fits `avail` bytes (0: none).
int64_t fitting_pairs(const LlamaConfig& c, const ModelPreset& p, Precision prec, bool ckpt, std::size_t avail,
                      StagePlan* out, const std::optional<DType>& grad_dtype) {
  for (int64_t n = p.pairs; n >= 1; n = n > 1 ? n / 2 : 0) {
    TrainingPlanOptions t;
    t.pairs = n, t.seq_len = p.seq, t.checkpointing = ckpt, t.optimizer = p.optimizer;
    t.grad_dtype = grad_dtype;
    StagePlan plan = plan_training_memory(c, prec, t);
    if (plan.total() <= avail) {
      *out = plan;
      return n;
    }
    if (n == 1) *out = plan;
  }
  return 0;
}

GenerationPlanOptions rollout_plan_options(const ModelPreset& p) {
  GenerationPlanOptions g;
  g.prompts = p.prompts, g.samples = 1, g.prompt_len = p.prompt_len, g.max_new_tokens = p.new_tokens;
  g.min_prompt_len = p.prompt_len;  // the bench's prompts all have prompt_len tokens
  return g;
}

int64_t decode_blocks(const ModelPreset& p, int64_t batch, int64_t extra) {
  return batch * ((p.decode_ctx + extra + 15) / 16);
}

void write_json(const Options& o, const JsonRow& head, const std::vector<JsonRow>& rows, bool announce = true) {
  if (o.json.empty()) return;
  sppo_bench::write_json_report(o.json, head, rows);
  if (announce) std::printf("wrote %s\n", o.json.c_str());
}

JsonRow header_json(const Options& o, const ModelPreset& p, double nparams) {
  const LlamaConfig& c = p.config;
  JsonRow h;
  h.str("suite", "model").str("source", "native").str("date", sppo_bench::utc_now()).str("device", o.device);
  h.str("preset", p.name).str("precision", precision_name(o.precision));
  h.num("vocab", static_cast<double>(c.vocab_size)).num("hidden", static_cast<double>(c.hidden_size));
  h.num("ffn", static_cast<double>(c.intermediate_size)).num("layers", static_cast<double>(c.num_layers));
  h.num("heads", static_cast<double>(c.num_heads)).num("kvHeads", static_cast<double>(c.num_kv_heads));
  h.num("params", nparams).num("matmulParams", sppo_bench::matmul_params(c));
  return h;
}

// ---- CPU: the table as it always was --------------------------------------------------------------
int run_cpu(const Options& o, const ModelPreset& p) {
  const LlamaConfig& c = p.config;
  const int64_t batch = p.pairs, seq = p.seq, new_tokens = p.new_tokens, repeat = o.get("repeat", 3),
                k = o.get("k", 5);
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
  TrainerOptions topt;
  topt.optimizer.kind = p.optimizer;
  topt.grad_dtype = o.grad_dtype;
  Trainer trainer(m, make_local_communicator(m.backend_ptr()), topt);

  std::vector<JsonRow> rows;
  std::printf("\n%-34s %10s %12s %14s\n", "benchmark", "seconds", "tokens/s", "tokens/cpu-s");
  double cpu0 = 0;
  // secs and cpu_secs cover the same work as toks (train steps: one step, the median wall time
  // and the mean CPU time; the others: the whole timed loop).
  auto row = [&](const char* name, double secs, double toks, double cpu_secs) {
    std::printf("%-34s %10.3f %12.1f %14.1f\n", name, secs, toks / secs, toks / cpu_secs);
    rows.push_back(JsonRow().str("name", name).num("seconds", secs).num("tokens", toks).num("tokensPerSecond", toks / secs)
                       .num("tokensPerCpuSecond", toks / cpu_secs));
  };
  std::vector<bool> ckpts = {false, true};
  if (o.ckpt == "0") ckpts = {false};
  if (o.ckpt == "1") ckpts = {true};
  if (wants(p, "train"))
    for (bool ckpt : ckpts) {
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
  if (wants(p, "logprobs")) {
    std::vector<float> lp(batch);
    double t0 = now();
    cpu0 = cpu_now();
    for (int64_t r = 0; r < repeat; ++r) m.sequence_logprobs(ch.view(batch, seq), Tensor(lp.data(), DType::F32, batch));
    row("sequence log-probs (forward)", now() - t0, static_cast<double>(repeat * batch * seq), cpu_now() - cpu0);
  }
  std::vector<std::vector<int32_t>> prompts;
  std::vector<uint64_t> seeds;
  for (int64_t i = 0; i < 2 * batch; ++i) {
    prompts.emplace_back(ch.tok.begin() + (i % batch) * seq, ch.tok.begin() + (i % batch) * seq + seq / 4);
    seeds.push_back(static_cast<uint64_t>(i));
  }
  GenerateOptions go;
  go.max_new_tokens = new_tokens;
  go.temperature = 0.7;
  go.top_p = 0.9;
  char name[64];
  if (wants(p, "generate")) {
    double t0 = now();
    cpu0 = cpu_now();
    auto gen = generate(m, prompts, 1, seeds, go);
    const double secs = now() - t0;
    int64_t toks = 0;
    for (auto& x : gen) toks += static_cast<int64_t>(x.tokens.size());
    std::snprintf(name, sizeof name, "generate (%lld prompts, KV cache)", (long long)prompts.size());
    row(name, secs, static_cast<double>(toks), cpu_now() - cpu0);
  }
  if (wants(p, "prefill")) {
    // The rollout's prefill: K samples of each prompt from one prefill, against K calls of one
    // sample each (K prefills). One new token, so the prefill dominates.
    std::vector<std::vector<int32_t>> long_prompts;
    for (int64_t i = 0; i < batch; ++i) long_prompts.emplace_back(ch.tok.begin() + i * seq, ch.tok.begin() + (i + 1) * seq);
    std::vector<uint64_t> few(seeds.begin(), seeds.begin() + batch);
    GenerateOptions one = go;
    one.max_new_tokens = 1;
    double t0 = now();
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
  JsonRow h = header_json(o, p, static_cast<double>(nparams));
  h.num("threads", cpu_threads());
  write_json(o, h, rows);
  return 0;
}

// ---- plans only (no allocation; any machine) ------------------------------------------------------
int run_plans(const Options& o, const ModelPreset& p, std::size_t avail) {
  const LlamaConfig& c = p.config;
  const ParamLayout layout(c);
  const Dtypes dt = dtypes_of(o.precision);
  std::printf("preset %s: %s\nconfig: V=%lld H=%lld I=%lld L=%lld heads=%lld/%lld params=%.3fB, %s; planned against %.1f GiB\n",
              p.name.c_str(), p.about.c_str(), (long long)c.vocab_size, (long long)c.hidden_size,
              (long long)c.intermediate_size, (long long)c.num_layers, (long long)c.num_heads,
              (long long)c.num_kv_heads, layout.count() / 1e9, precision_name(o.precision), gib(static_cast<double>(avail)));
  std::vector<JsonRow> rows;
  if (wants(p, "train")) {
    const bool ckpt = o.ckpt.empty() ? p.checkpointing : o.ckpt == "1";
    StagePlan plan;
    const int64_t n = fitting_pairs(c, p, o.precision, ckpt, avail, &plan, o.grad_dtype);
    std::printf("train step (%s%s): %lld of %lld pairs x %lld fit\n", optimizer_kind_name(p.optimizer),
                ckpt ? ", checkpointing" : "", (long long)n, (long long)p.pairs, (long long)p.seq);
    print_plan(plan);
    rows.push_back(JsonRow().str("name", "train").num("pairs", static_cast<double>(n)).num("seq", static_cast<double>(p.seq))
                       .num("plannedBytes", static_cast<double>(plan.total())));
  }
  if (wants(p, "rollout")) {
    const StagePlan plan = plan_generation_memory(c, o.precision, rollout_plan_options(p));
    std::printf("rollout %lld x (%lld + %lld):%s\n", (long long)p.prompts, (long long)p.prompt_len,
                (long long)p.new_tokens, plan.total() <= avail ? " fits" : " does NOT fit");
    print_plan(plan);
  }
  if (wants(p, "decode"))
    for (int64_t b : p.decode_batches) {
      const double kv = static_cast<double>(KVCache::pool_bytes(c, dt.act, decode_blocks(p, b, 64), 16));
      const double w = static_cast<double>(layout.total()) * static_cast<double>(dtype_size(dt.weight));
      const double el = static_cast<double>(dtype_size(dt.act));
      std::printf("decode step, batch %lld, ctx %lld: weights %.2f GiB + KV pool %.2f GiB; reads %.2f GB, floor %.3f ms at 4.3 TB/s\n",
                  (long long)b, (long long)p.decode_ctx, gib(w), gib(kv),
                  sppo_bench::decode_step_bytes(c, static_cast<double>(b), static_cast<double>(p.decode_ctx), el) / 1e9,
                  sppo_bench::decode_step_bytes(c, static_cast<double>(b), static_cast<double>(p.decode_ctx), el) / 4.3e9);
    }
  write_json(o, header_json(o, p, static_cast<double>(layout.count())), rows);
  return 0;
}

#ifdef SPPO_WITH_CUDA
// ---- CUDA ---------------------------------------------------------------------------------------------
int run_cuda(const Options& o, const ModelPreset& p) {
  using namespace sppo_bench;
  const LlamaConfig& c = p.config;
  const int64_t repeat = o.get("repeat", 3), warmup = o.get("warmup", 1);
  auto be = backend_for(Device::CUDA);
  const auto devs = cuda_devices();
  const std::string card = devs.empty() ? "?" : devs[0].name;
  const double t_start = now();
  const Dtypes dt = dtypes_of(o.precision);
  const bool bf16 = o.precision == Precision::BF16;
  const double el = static_cast<double>(dtype_size(dt.act));  // bytes per weight, activation, cached K/V
  // 256 MiB of random values in the compute dtype (larger than L2), tiled over weights and caches.
  sppo_bench::say_if_smoke();
  const std::size_t chunk_bytes = sppo_bench::full_or_toy(std::size_t{256} << 20, std::size_t{1} << 20);
  const Buffer chunk = random_chunk(be, chunk_bytes / dtype_size(dt.act), 1, 0.02, dt.act);
  const double bw = cuda_copy_gbs(be, sppo_bench::full_or_toy(std::size_t{1} << 30, std::size_t{1} << 20), 10);
  const double tflops = cuda_matmul_tflops(be, chunk, sppo_bench::full_or_toy<int64_t>(8192, 128), 5, dt.act);
  // H200 SXM: the issues' bandwidth; the datasheet's dense peak of the compute type (fp32 without
  // tensor cores, or bf16 tensor cores).
  const double kIssueTBs = 4.3, kDatasheetTflops = bf16 ? 989.0 : 67.0;
  const std::string compute = bf16 ? "bf16 inputs, CUBLAS_COMPUTE_32F (fp32 accumulation)" : "CUBLAS_COMPUTE_32F (fp32, no TF32)";
  std::printf("device: CUDA %s; copy bandwidth %.0f GB/s (read + write), %s matmul %.1f TFLOP/s "
              "(cuBLASLt %s; datasheet %.0f)\n",
              card.c_str(), bw, precision_name(o.precision), tflops, compute.c_str(), kDatasheetTflops);
  std::printf("timing: median of %lld after %lld warm-up; train/log-probs/rollout host wall clock to synchronize() "
              "(they download), decode device time between CUDA events; 'ev ms' is the event time of every row\n",
              (long long)repeat, (long long)warmup);
  const std::size_t base = MemorySampler::in_use();
  const std::size_t headroom = std::size_t{3} << 30;  // CUDA context growth, cuBLASLt workspace, scratch pool
  const std::size_t avail = be->available_memory() > headroom ? be->available_memory() - headroom : 0;

  LlamaModel m(be, c, o.precision);
  fast_init(m, chunk);
  const double nparams = static_cast<double>(m.layout().count());
  std::printf("preset %s: V=%lld H=%lld I=%lld L=%lld heads=%lld/%lld params=%.3fB %s (%.1f s to here)\n",
              p.name.c_str(), (long long)c.vocab_size, (long long)c.hidden_size, (long long)c.intermediate_size,
              (long long)c.num_layers, (long long)c.num_heads, (long long)c.num_kv_heads, nparams / 1e9,
              precision_name(o.precision), now() - t_start);
  std::printf("\n%-36s %10s %10s %12s %9s %9s %8s %9s\n", "benchmark", "ms", "ev ms", "tokens/s", "peak GiB",
              "floor ms", "x floor", "plan GiB");
  JsonRow h = header_json(o, p, nparams);
  h.str("deviceName", card).num("copyBandwidthGBs", bw).num("matmulTflops", tflops)
      .num("datasheetTflops", kDatasheetTflops).num("issueBandwidthTBs", kIssueTBs)
      .str("matmulCompute", compute);
  std::vector<JsonRow> rows;
  // The report is rewritten after every row: a run stopped by its timeout keeps the rows it finished.
  auto add = [&](const JsonRow& r) {
    rows.push_back(r);
    write_json(o, h, rows, false);
  };
  auto print_row = [&](const std::string& name, double ms, double ev, double toks, double peak, double floor_ms,
                       double plan) {
    std::printf("%-36s %10.2f %10.2f %12.1f %9.2f %9.2f %8.2f %9.2f\n", name.c_str(), ms, ev, toks / (ms / 1e3),
                gib(peak), floor_ms, ms / floor_ms, gib(plan));
    std::fflush(stdout);
  };
  // ms: the row's figure (wall clock, or the event time for decode); ev and wall: both medians.
  auto base_row = [&](const std::string& kind, const std::string& name, double ms, double ev, double wall,
                      double toks, double peak, double floor_ms, double plan) {
    print_row(name, ms, ev, toks, peak, floor_ms, plan);
    JsonRow r;
    r.str("name", kind).str("label", name).num("ms", ms).num("eventMs", ev).num("wallMs", wall).num("tokens", toks)
        .num("tokensPerSecond", toks / (ms / 1e3)).num("peakBytes", peak).num("floorMs", floor_ms)
        .num("xFloor", ms / floor_ms).num("plannedBytes", plan).num("repeat", static_cast<double>(repeat))
        .num("warmup", static_cast<double>(warmup));
    return r;
  };

  std::mt19937_64 g(7);
  if (wants(p, "train") || wants(p, "logprobs")) {
    const bool ckpt = o.ckpt.empty() ? p.checkpointing : o.ckpt == "1";
    StagePlan plan;
    const int64_t B = fitting_pairs(c, p, o.precision, ckpt, avail, &plan, o.grad_dtype);  // avail was read before the weights
    if (B == 0) {
      std::printf("train step: skipped, even 1 pair x %lld does not fit (planned %.1f GiB, %.1f GiB free)\n",
                  (long long)p.seq, gib(static_cast<double>(plan.total())), gib(static_cast<double>(avail)));
    } else {
      if (B < p.pairs)
        std::printf("train step: %lld pairs x %lld planned %.1f GiB does not fit; the planner chose %lld pairs\n",
                    (long long)p.pairs, (long long)p.seq, gib(static_cast<double>(plan.total())), (long long)B);
      const int64_t T = p.seq;
      Sides ch = make_side(g, B, T, c.vocab_size), rj = make_side(g, B, T, c.vocab_size);
      std::vector<float> refc(B, -100.f), refr(B, -100.f), pw(B, 0.7f), pl(B, 0.3f), pwl(B, 0.6f);
      PairBatch pb{ch.view(B, T), rj.view(B, T), refc.data(), refr.data(), pwl.data(), pw.data(), pl.data()};
      MemorySampler mem;
      mem.start();
      TrainerOptions topt;
      topt.optimizer.kind = p.optimizer;
      topt.grad_dtype = o.grad_dtype;
      Trainer trainer(m, make_local_communicator(m.backend_ptr()), topt);
      m.set_gradient_checkpointing(ckpt);
      const double tokens = static_cast<double>(2 * B * T);
      if (wants(p, "train")) {
        std::vector<double> wall, ev;
        for (int64_t r = 0; r < warmup + repeat; ++r) {
          const CudaTiming t = cuda_timed(*be, [&] {
            trainer.accumulate(pb, LossType::SPPO, 1e-3, 1.0);
            trainer.step(5e-7, 1.0);
          });
          if (r >= warmup) wall.push_back(t.wall_ms), ev.push_back(t.event_ms);
        }
        const double peak = static_cast<double>(mem.stop() - base);
        const double floor_ms = model_flops(c, tokens, static_cast<double>(T), true) / (tflops * 1e9);
        char name[96];
        std::snprintf(name, sizeof name, "train step %lldx2x%lld %s%s", (long long)B, (long long)T,
                      optimizer_kind_name(p.optimizer), ckpt ? " ckpt" : "");
        JsonRow r = base_row("train", name, median(wall), median(ev), median(wall), tokens, peak, floor_ms,
                             static_cast<double>(plan.total()));
        r.num("pairs", static_cast<double>(B)).num("requestedPairs", static_cast<double>(p.pairs))
            .num("seq", static_cast<double>(T)).str("optimizer", optimizer_kind_name(p.optimizer))
            .num("checkpointing", ckpt ? 1 : 0).num("flops", model_flops(c, tokens, static_cast<double>(T), true))
            .num("floorMsDatasheet", model_flops(c, tokens, static_cast<double>(T), true) / (kDatasheetTflops * 1e9));
        add(r);
        mem.start();
      }
      if (wants(p, "logprobs")) {
        std::vector<float> lp(B);
        std::vector<double> wall, ev;
        for (int64_t r = 0; r < warmup + repeat; ++r) {
          const CudaTiming t = cuda_timed(*be, [&] { m.sequence_logprobs(ch.view(B, T), Tensor(lp.data(), DType::F32, B)); });
          if (r >= warmup) wall.push_back(t.wall_ms), ev.push_back(t.event_ms);
        }
        const double peak = static_cast<double>(mem.stop() - base);
        const double toks = static_cast<double>(B * T);
        const double fl = model_flops(c, toks, static_cast<double>(T), false);
        char name[96];
        std::snprintf(name, sizeof name, "sequence log-probs %lldx%lld", (long long)B, (long long)T);
        JsonRow r = base_row("logprobs", name, median(wall), median(ev), median(wall), toks, peak, fl / (tflops * 1e9), 0);
        r.num("rows", static_cast<double>(B)).num("seq", static_cast<double>(T)).num("flops", fl);
        add(r);
      }
      mem.stop();
    }  // the trainer's gradients and optimizer state are freed here
  }
  if (wants(p, "rollout")) {
    const StagePlan plan = plan_generation_memory(c, o.precision, rollout_plan_options(p));
    std::vector<std::vector<int32_t>> prompts(p.prompts, std::vector<int32_t>(p.prompt_len));
    std::vector<uint64_t> seeds;
    for (auto& pr : prompts) {
      for (auto& t : pr) t = static_cast<int32_t>(g() % c.vocab_size);
      seeds.push_back(seeds.size());
    }
    GenerateOptions go;
    go.max_new_tokens = p.new_tokens;
    go.temperature = 0.7;
    go.top_p = 0.9;  // no eos_ids: every sample runs to max_new_tokens (the tokens are counted anyway)
    MemorySampler mem;
    mem.start();
    std::vector<double> wall, ev;
    double toks = 0;
    for (int64_t r = 0; r < warmup + repeat; ++r) {
      std::vector<Generation> gen;
      const CudaTiming t = cuda_timed(*be, [&] { gen = generate(m, prompts, 1, seeds, go); });
      toks = 0;
      for (auto& x : gen) toks += static_cast<double>(x.tokens.size());
      if (r >= warmup) wall.push_back(t.wall_ms), ev.push_back(t.event_ms);
    }
    const double peak = static_cast<double>(mem.stop() - base);
    double floor_ms = model_flops(c, static_cast<double>(p.prompts * p.prompt_len), static_cast<double>(p.prompt_len), false) /
                      (tflops * 1e9);
    for (int64_t t = 0; t < p.new_tokens; ++t)
      floor_ms += decode_step_bytes(c, static_cast<double>(p.prompts), static_cast<double>(p.prompt_len + t), el) / (bw * 1e6);
    char name[96];
    std::snprintf(name, sizeof name, "rollout %lldx(%lld+%lld) new tokens", (long long)p.prompts,
                  (long long)p.prompt_len, (long long)p.new_tokens);
    JsonRow r = base_row("rollout", name, median(wall), median(ev), median(wall), toks, peak, floor_ms, static_cast<double>(plan.total()));
    r.num("prompts", static_cast<double>(p.prompts)).num("promptLen", static_cast<double>(p.prompt_len))
        .num("newTokens", static_cast<double>(p.new_tokens))
        .num("expectedTokens", static_cast<double>(p.prompts * p.new_tokens));
    add(r);
  }
  if (wants(p, "decode"))
    for (int64_t b : p.decode_batches) {
      const int64_t extra = 3 * (warmup + repeat) + 1;  // eager, bucketed eager, graph: each appends a token a step
      const int64_t blocks = decode_blocks(p, b, extra);
      const std::size_t kv = KVCache::pool_bytes(c, dt.act, blocks, 16);
      if (kv + static_cast<std::size_t>(b * c.vocab_size) * dtype_size(dt.act) > be->available_memory()) {
        std::printf("decode step batch %lld: skipped, its KV pool (%.1f GiB) does not fit in %.1f GiB free\n",
                    (long long)b, gib(static_cast<double>(kv)), gib(static_cast<double>(be->available_memory())));
        continue;
      }
      MemorySampler mem;
      mem.start();
      KVCache cache(m, b, p.decode_ctx + extra, blocks, 16, decode_max_padding(b));  // the buckets' scratch
      for (int64_t l = 0; l < c.num_layers; ++l) {  // cached K and V: random, not zeros
        tile_fill(*be, chunk, cache.k_pool(l).data, cache.k_pool(l).bytes());
        tile_fill(*be, chunk, cache.v_pool(l).data, cache.v_pool(l).bytes());
      }
      std::vector<int> seqs;
      for (int64_t i = 0; i < b; ++i) {
        seqs.push_back(cache.open());
        cache.append(seqs.back(), p.decode_ctx);
      }
      Buffer logits(be, static_cast<std::size_t>(b * c.vocab_size) * dtype_size(dt.act));
      std::vector<int32_t> tok(b);
      std::vector<double> wall, ev;
      for (int64_t r = 0; r < warmup + repeat; ++r) {
        std::vector<DecodeItem> items;
        for (int64_t i = 0; i < b; ++i) {
          tok[i] = static_cast<int32_t>(g() % c.vocab_size);
          items.push_back(DecodeItem{seqs[i], &tok[i], 1});
        }
        const CudaTiming t = cuda_timed(*be, [&] { m.decode(cache, items, logits.view(dt.act, b * c.vocab_size)); });
        if (r >= warmup) wall.push_back(t.wall_ms), ev.push_back(t.event_ms);
      }
      // The same step bucketed: eager launches, then graph replays (the first call captures: warm-up).
      std::vector<double> ev_bucket[2];
      {
        DecodeBuckets buckets(m, cache, b);
        const char* prev = std::getenv("SPPO_CUDA_GRAPHS");
        const std::string saved = prev ? prev : "";
        for (int mode = 0; mode < 2; ++mode) {
          if (mode == 0) setenv("SPPO_CUDA_GRAPHS", "0", 1);
          else if (prev) setenv("SPPO_CUDA_GRAPHS", saved.c_str(), 1);
          else unsetenv("SPPO_CUDA_GRAPHS");
          for (int64_t r = 0; r < warmup + repeat + (mode == 1 ? 1 : 0); ++r) {
            std::vector<DecodeItem> items;
            for (int64_t i = 0; i < b; ++i) {
              tok[i] = static_cast<int32_t>(g() % c.vocab_size);
              items.push_back(DecodeItem{seqs[i], &tok[i], 1});
            }
            const CudaTiming t = cuda_timed(*be, [&] { m.decode_bucketed(cache, items, buckets); });
            if (r >= warmup + (mode == 1 ? 1 : 0)) ev_bucket[mode].push_back(t.event_ms);
          }
        }
        const bool replays = buckets.slot(buckets.bucket_for(b)) && buckets.slot(buckets.bucket_for(b))->replays();
        if (!replays) std::printf("decode step batch %lld: the graph did not capture (see the message above); "
                                  "'graph ms' is eager\n", (long long)b);
      }
      const double peak = static_cast<double>(mem.stop() - base);
      const double ctx = static_cast<double>(p.decode_ctx + warmup + repeat / 2);  // the median step's context
      const double bytes = decode_step_bytes(c, static_cast<double>(b), ctx, el);
      char name[96];
      std::snprintf(name, sizeof name, "decode step batch %lld ctx %lld", (long long)b, (long long)p.decode_ctx);
      // The decode row is device time: its 'ms' is the event median.
      JsonRow r = base_row("decode", name, median(ev), median(ev), median(wall), static_cast<double>(b), peak,
                           bytes / (bw * 1e6), static_cast<double>(kv));
      const double eager_bucket_ms = median(ev_bucket[0]), graph_ms = median(ev_bucket[1]);
      r.num("eagerBucketMs", eager_bucket_ms).num("graphMs", graph_ms).num("graphGain", median(ev) / graph_ms);
      r.num("batch", static_cast<double>(b)).num("ctx", static_cast<double>(p.decode_ctx)).num("bytes", bytes)
          .num("floorMsIssue", bytes / (kIssueTBs * 1e9))
          .num("floorMsIssueBf16", decode_step_bytes(c, static_cast<double>(b), ctx, 2) / (kIssueTBs * 1e9));
      add(r);
      // The bf16 floor (half the fp32 bytes) is the issue's target in either mode.
      std::printf("%-36s reads %.2f GB: floor %.3f ms at the measured bandwidth, %.3f ms at 4.3 TB/s (bf16: %.3f ms)\n",
                  "", bytes / 1e9, bytes / (bw * 1e6), bytes / (kIssueTBs * 1e9),
                  decode_step_bytes(c, static_cast<double>(b), ctx, 2) / (kIssueTBs * 1e9));
      std::printf("%-36s eager %.3f ms, bucket eager %.3f ms, graph %.3f ms (device events): graphs %.2fx\n", "",
                  median(ev), eager_bucket_ms, graph_ms, median(ev) / graph_ms);
    }
  h.num("seconds", now() - t_start);
  write_json(o, h, rows);
  return 0;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    const ModelPreset p = resolve(o);
    if (o.plan_only) {
      std::size_t avail = static_cast<std::size_t>((o.memory_gib > 0 ? o.memory_gib : 139.0) * double(1ull << 30));
      if (o.memory_gib <= 0 && o.device == "cuda") {
        require_device(Device::CUDA);
        avail = backend_for(Device::CUDA)->available_memory();
      }
      return run_plans(o, p, avail);
    }
    if (o.device == "cpu") {
      sppo_bench::require_timed_cpu_precision(o.precision);
      return run_cpu(o, p);
    }
    require_device(Device::CUDA);  // names why not: no CUDA in this build, no driver, no device
#ifdef SPPO_WITH_CUDA
    return run_cuda(o, p);
#else
    fail("--device cuda: this build has no CUDA backend (SPPO_CUDA=off or no nvcc)");
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_model: %s\n", e.what());
    return 1;
  }
}
