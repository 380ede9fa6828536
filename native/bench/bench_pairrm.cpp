// Throughput of the PairRM judge's model (issue 11): all K(K-1) ordered pairs of K candidates for
// each of `prompts` prompts, cut into calls as the pairrm judge cuts them (at most --batch pairs
// and --tokens tokens per call), through PairRmModel::compare. Weights are random in PairRM's
// shape unless the options shrink it; token ids are random and each pair is
// [CLS] <s> source [SEP] [CLS] <c1> y_i [SEP] [CLS] <c2> y_j [SEP] (bench_pairrm_work.h, which also
// counts the FLOPs).
//
// CPU (default): one row at --batch pairs per call, fp32, weights from init_random: pairs/s,
// tokens/s, GFLOP/s and per CPU-second figures, after one warm-up call. The floor is the model's
// FLOPs at the CPU backend's matmul rate measured in the same run.
// CUDA (--device cuda, --precision fp32, bf16 or fp16): three rows, each the median of --repeat passes
// over all the pairs after one warm-up call and --warmup untimed passes: `single` (one pair per
// call, llm-blender's batch size), `batched` (--batch pairs, --tokens budget) and `anchor` (the
// same limits, pairs at the judge's longest: --anchor-source 1224 + 2 x --anchor-candidate 412
// tokens, the lengths of issue 11's FLOP anchor; --anchor-prompts 1 prompt). compare() downloads its logits, so a pass is
// host wall clock up to synchronize(); the CUDA events on the backend's stream are beside it. The
// floor: FLOPs over the matmul rate of the compute dtype measured in the same run (cuBLASLt,
// CUBLAS_COMPUTE_32F); the peak is device memory in use above the start. Weights are tiled from
// one random device chunk (bench_pairrm_cuda.h). The derived figure: the anchor's 20.8k prompts x
// 20 pairs at the measured pairs/s, and the anchor's 5e17 FLOP at the measured FLOP rate, each
// against its 28 minutes (target <= 1.5x).
// --plan-only 1 prints each row's memory plan (any precision, any device) without allocating.
//   bench_pairrm [--device cpu|cuda] [--precision fp32|bf16|fp16] [--json FILE] [--repeat R] [--warmup W]
//                [--k 5] [--prompts 1|4] [--source 128] [--candidate 256] [--batch 4|16] [--tokens 16384]
//                [--rows single,batched,anchor] [--anchor-source 1224] [--anchor-candidate 412] [--anchor-prompts 1]
//                [--layers 24] [--hidden 1024] [--heads 16] [--ffn 4096] [--vocab 128005] [--buckets 256]
//                [--plan-only 0|1]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <ctime>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "bench_flags.h"
#include "bench_json.h"
#include "bench_pairrm_cuda.h"
#include "bench_pairrm_work.h"
#include "bench_smoke.h"
#include "core/device.h"
#include "core/error.h"
#include "core/parallel.h"
#include "model/pairrm_model.h"

using namespace sppo;
using sppo_bench::parse_int;
using sppo_bench::split_list;
using sppo_bench::JsonRow;
using sppo_bench::PairRmAnchor;
using sppo_bench::PairRmWork;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
double cpu_now() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
double gib(double b) { return b / double(1ull << 30); }

struct Options {
  std::string device = "cpu", json, rows;
  Precision precision = Precision::FP32;
  bool plan_only = false;
  std::map<std::string, int64_t> ints;
  int64_t get(const std::string& k, int64_t def) const { return ints.count(k) ? ints.at(k) : def; }
  bool cuda() const { return device == "cuda"; }
};

void usage() {
  std::printf(
      "bench_pairrm [--device cpu|cuda] [--precision fp32|bf16|fp16] [--json FILE] [--repeat R] [--warmup W]\n"
      "             [--k 5] [--prompts P] [--source 128] [--candidate 256] [--batch B] [--tokens 16384]\n"
      "             [--rows single,batched,anchor] [--anchor-source 1224] [--anchor-candidate 412] [--anchor-prompts 1]\n"
      "             [--layers 24] [--hidden 1024] [--heads 16] [--ffn 4096] [--vocab 128005] [--buckets 256]\n"
      "             [--plan-only 0|1]\n"
      "K(K-1) ordered pairs per prompt through PairRmModel::compare, at most --batch pairs and --tokens tokens\n"
      "per call (0: no token budget). CPU: one row (fp32; defaults P 1, B 4, one timed pass). CUDA: the rows\n"
      "single (1 pair per call), batched and anchor (pairs at the anchor lengths), median of --repeat (3)\n"
      "passes after --warmup (1) (defaults P 4, B 16), floors from the matmul rate measured in the run.\n"
      "--precision bf16 or fp16 (CUDA, or --plan-only): 16-bit weights and activations, fp32 statistics\n"
      "(fp16: as llm-blender runs PairRM).\n");
}

Options parse(int argc, char** argv) {
  Options o;
  static const std::map<std::string, int64_t> kMin = {
      {"k", 2},      {"prompts", 1}, {"source", 1},  {"candidate", 1}, {"batch", 1},         {"tokens", 0},
      {"layers", 1}, {"hidden", 1},  {"heads", 1},   {"ffn", 1},       {"vocab", 1},         {"buckets", 0},
      {"repeat", 1}, {"warmup", 0},  {"plan-only", 0}, {"anchor-source", 1}, {"anchor-candidate", 1},
      {"anchor-prompts", 1}};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    }
    if (a.rfind("--", 0) != 0) fail("unexpected argument '", a, "' (see --help)");
    if (i + 1 >= argc) fail(a, " needs a value (see --help)");
    const std::string k = a.substr(2), v = argv[++i];
    if (k == "device") {
      if (v != "cpu" && v != "cuda") fail("--device must be cpu or cuda (got '", v, "')");
      o.device = v;
    } else if (k == "precision") {
      if (v == "fp32") o.precision = Precision::FP32;
      else if (v == "bf16") o.precision = Precision::BF16;
      else if (v == "fp16") o.precision = Precision::FP16;
      else fail("--precision must be fp32, bf16 or fp16 (got '", v, "')");
    } else if (k == "json") {
      o.json = v;
    } else if (k == "rows") {
      o.rows = v;
      if (split_list(v).empty()) fail("--rows needs a list of rows: single, batched, anchor");
      for (auto& r : split_list(v))
        if (r != "single" && r != "batched" && r != "anchor")
          fail("--rows: '", r, "' is not a row (single, batched, anchor)");
    } else if (kMin.count(k)) {
      o.ints[k] = parse_int(a, v, kMin.at(k));
    } else {
      fail("unknown option ", a, " (see --help)");
    }
  }
  o.plan_only = o.get("plan-only", 0) != 0;
  if (!o.rows.empty() && !o.cuda() && !o.plan_only)
    fail("--rows chooses the CUDA rows; the CPU runs one row of --batch pairs per call");
  return o;
}

PairRmConfig config_of(const Options& o) {
  PairRmConfig c;
  c.num_layers = o.get("layers", 24);
  c.hidden_size = o.get("hidden", 1024);
  c.num_heads = o.get("heads", 16);
  c.head_dim = c.hidden_size / c.num_heads;
  c.intermediate_size = o.get("ffn", 4096);
  c.vocab_size = o.get("vocab", 128005);
  c.position_buckets = o.get("buckets", 256);
  c.max_relative_positions = c.position_buckets > 0 ? 2 * c.position_buckets : 512;
  if (c.head_dim * c.num_heads != c.hidden_size)
    fail("--hidden (", c.hidden_size, ") must be a multiple of --heads (", c.num_heads, ")");
  validate_config(c);
  return c;
}

struct RowSpec {
  std::string name;
  int64_t prompts, source, candidate, batch, tokens;
};

// CPU: the one row of --batch pairs per call. CUDA (and plans): the chosen rows of single, batched, anchor.
std::vector<RowSpec> row_specs(const Options& o) {
  const bool gpu_rows = o.cuda() || o.plan_only;
  const int64_t prompts = o.get("prompts", o.cuda() ? 4 : 1), anchor_prompts = o.get("anchor-prompts", 1);
  const int64_t src = o.get("source", 128), cand = o.get("candidate", 256), tokens = o.get("tokens", 16384);
  const int64_t batch = o.get("batch", o.cuda() ? 16 : 4);
  if (!gpu_rows) return {{batch == 1 ? "single" : "batched", prompts, src, cand, batch, tokens}};
  const std::vector<std::string> names = split_list(o.rows.empty() ? (o.cuda() ? "single,batched,anchor" : "batched") : o.rows);
  std::vector<RowSpec> out;
  for (auto& n : names) {
    if (n == "single") out.push_back({n, prompts, src, cand, 1, 0});
    if (n == "batched") out.push_back({n, prompts, src, cand, batch, tokens});
    if (n == "anchor")
      out.push_back({n, anchor_prompts, o.get("anchor-source", 1224), o.get("anchor-candidate", 412), batch, tokens});
  }
  return out;
}

std::string label_of(const RowSpec& r, const PairRmWork& w) {
  char b[128];
  std::snprintf(b, sizeof b, "%s: %lld pairs x %lld tok, %lld/call", r.name.c_str(), (long long)w.pairs,
                (long long)w.L, (long long)w.per_call);
  return b;
}

// The anchor's 28 minutes against this row's rate: its pairs at the row's pairs/s (like for like
// only where the row's pairs have the anchor's length) and its FLOPs at the row's FLOP rate.
void add_anchor_fields(JsonRow& r, double pairs_per_s, double flops_per_s) {
  const double by_pairs = PairRmAnchor::pairs() / pairs_per_s, by_flops = PairRmAnchor::flops / flops_per_s;
  r.num("anchorSecondsByPairs", by_pairs).num("anchorRatioByPairs", by_pairs / PairRmAnchor::seconds());
  r.num("anchorSecondsByFlops", by_flops).num("anchorRatioByFlops", by_flops / PairRmAnchor::seconds());
}

JsonRow header(const Options& o, const PairRmConfig& c, int64_t K, int64_t prompts, const std::string& name) {
  JsonRow h;
  h.str("suite", "pairrm").str("source", "native").str("date", sppo_bench::utc_now()).str("device", o.device);
  h.str("deviceName", name).str("precision", precision_name(o.precision));
  h.num("k", static_cast<double>(K)).num("prompts", static_cast<double>(prompts));
  h.num("layers", static_cast<double>(c.num_layers)).num("hidden", static_cast<double>(c.hidden_size));
  h.num("heads", static_cast<double>(c.num_heads)).num("ffn", static_cast<double>(c.intermediate_size));
  h.num("vocab", static_cast<double>(c.vocab_size)).num("buckets", static_cast<double>(c.position_buckets));
  JsonRow a;
  a.num("prompts", PairRmAnchor::prompts).num("pairsPerPrompt", PairRmAnchor::pairs_per_prompt)
      .num("flops", PairRmAnchor::flops).num("tflops", PairRmAnchor::tflops).num("seconds", PairRmAnchor::seconds())
      .num("flopsPerPair", PairRmAnchor::flops_per_pair()).num("targetRatio", PairRmAnchor::target_ratio);
  h.obj("anchor", a);
  return h;
}

void write(const Options& o, const JsonRow& h, const std::vector<JsonRow>& rows) {
  if (!o.json.empty()) sppo_bench::write_json_report(o.json, h, rows);
}

// The common fields of a timed row (ms: the median pass).
JsonRow row_json(const RowSpec& s, const PairRmWork& w, const PairRmConfig& c, double ms, double floor_tflops,
                 double peak, double planned, int64_t repeat, int64_t warmup, const std::string& label) {
  const double secs = ms / 1e3, fl = w.flops(c), floor_ms = fl / (floor_tflops * 1e9);
  JsonRow r;
  r.str("name", s.name).str("label", label).num("prompts", static_cast<double>(s.prompts))
      .num("source", static_cast<double>(s.source))
      .num("candidate", static_cast<double>(s.candidate)).num("tokensPerPair", static_cast<double>(w.L))
      .num("pairs", static_cast<double>(w.pairs)).num("pairsPerCall", static_cast<double>(w.per_call))
      .num("tokenBudget", static_cast<double>(s.tokens)).num("calls", static_cast<double>(w.calls()))
      .num("relRows", static_cast<double>(w.rel_rows)).num("tokens", w.tokens_total()).num("ms", ms)
      .num("seconds", secs).num("pairsPerSecond", static_cast<double>(w.pairs) / secs)
      .num("tokensPerSecond", w.tokens_total() / secs).num("flops", fl).num("flopsPerPair", fl / static_cast<double>(w.pairs))
      .num("tflops", fl / (secs * 1e12)).num("floorMs", floor_ms).num("xFloor", ms / floor_ms).num("peakBytes", peak)
      .num("plannedBytes", planned).num("repeat", static_cast<double>(repeat)).num("warmup", static_cast<double>(warmup));
  add_anchor_fields(r, static_cast<double>(w.pairs) / secs, fl / secs);
  return r;
}

struct RowRate {
  std::string name;
  int64_t L;
  double pairs_per_s, flops_per_s, flops_per_pair;
};

// Issue 11's derived figure, from the anchor-length row (else the last row), printed and as JSON.
JsonRow derived(const std::vector<RowRate>& rows) {
  const RowRate* r = &rows.back();
  for (auto& x : rows)
    if (x.name == "anchor") r = &x;
  const double by_pairs = PairRmAnchor::pairs() / r->pairs_per_s, by_flops = PairRmAnchor::flops / r->flops_per_s;
  const double a = PairRmAnchor::seconds(), t = PairRmAnchor::target_ratio;
  std::printf("\nanchor (issue 11): %.0f prompts x %.0f pairs = %.3g FLOP (%.3g per pair), %.1f min at %.0f TFLOP/s; "
              "target <= %.1fx\n",
              PairRmAnchor::prompts, PairRmAnchor::pairs_per_prompt, PairRmAnchor::flops, PairRmAnchor::flops_per_pair(),
              a / 60, PairRmAnchor::tflops, t);
  std::printf("  row '%s' (%lld tokens a pair, %.3g FLOP a pair): its pairs at %.2f pairs/s take %.1f min (%.2fx: %s); "
              "its FLOPs at %.1f TFLOP/s take %.1f min (%.2fx: %s)\n",
              r->name.c_str(), (long long)r->L, r->flops_per_pair, r->pairs_per_s, by_pairs / 60, by_pairs / a,
              by_pairs / a <= t ? "met" : "missed", r->flops_per_s / 1e12, by_flops / 60, by_flops / a,
              by_flops / a <= t ? "met" : "missed");
  JsonRow d;
  d.str("row", r->name).num("tokensPerPair", static_cast<double>(r->L)).num("flopsPerPair", r->flops_per_pair)
      .num("pairsPerSecond", r->pairs_per_s).num("tflops", r->flops_per_s / 1e12)
      .num("secondsByPairs", by_pairs).num("ratioByPairs", by_pairs / a).flag("meetsTargetByPairs", by_pairs / a <= t)
      .num("secondsByFlops", by_flops).num("ratioByFlops", by_flops / a).flag("meetsTargetByFlops", by_flops / a <= t);
  return d;
}

// The matmul rate of the CPU backend (fp32), best of 3 after a warm-up, on n x n x n random operands.
double cpu_matmul_tflops(Backend& be, int64_t n) {
  std::vector<float> a(static_cast<size_t>(n * n)), b(a.size()), out(a.size());
  uint64_t s = 7;
  for (auto* v : {&a, &b})
    for (auto& x : *v) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      x = static_cast<float>((s >> 40) & 0xffff) / 65536.0f - 0.5f;
    }
  const Tensor ta(a.data(), DType::F32, n * n), tb(b.data(), DType::F32, n * n), tc(out.data(), DType::F32, n * n);
  double best = 1e30;
  for (int i = 0; i < 4; ++i) {
    const double t0 = now();
    be.matmul(ta, tb, tc, n, n, n, false, true, false);
    if (i > 0) best = std::min(best, now() - t0);
  }
  return 2.0 * static_cast<double>(n * n * n) / (best * 1e12);
}

double max_rss_bytes() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) * 1024.0;  // Linux: KiB
}

void run_calls(PairRmModel& m, const PairRmWork& w, std::vector<float>& out, int64_t n_pairs) {
  for (int64_t p0 = 0; p0 < n_pairs; p0 += w.per_call) {
    const int64_t n = std::min(w.per_call, n_pairs - p0);
    PairBatch b{n, w.lengths.data() + p0, w.tokens.data() + p0 * w.L, w.slots.data() + 3 * p0};
    m.compare(b, Tensor(out.data() + p0, DType::F32, n));
  }
}

// Every pair's logit was written (they start as NaN) and is finite: the timed work computed something.
void check_logits(const std::vector<float>& out, const std::string& row) {
  for (size_t i = 0; i < out.size(); ++i)
    if (!std::isfinite(out[i])) fail("row ", row, ": the logit of pair ", i, " is ", out[i], " (not finite)");
}

// ---- CPU: the output as it always was, plus the floor and the JSON -----------------------------------
int run_cpu(const Options& o, const PairRmConfig& c) {
  const int64_t K = o.get("k", 5), prompts = o.get("prompts", 1), repeat = o.get("repeat", 1), warmup = o.get("warmup", 0);
  const RowSpec spec = row_specs(o)[0];
  auto be = backend_for(Device::CPU);
  const double t_load = now();
  PairRmModel m(be, c, Precision::FP32);
  m.init_random(1, 0.02);
  const double load_s = now() - t_load;
  const double mm_tflops = cpu_matmul_tflops(*be, 1024);
  const PairRmWork w = sppo_bench::make_pairrm_work(c, K, spec.prompts, spec.source, spec.candidate, spec.batch, spec.tokens);
  std::vector<float> out(static_cast<size_t>(w.pairs), std::numeric_limits<float>::quiet_NaN());
  run_calls(m, w, out, std::min(w.per_call, w.pairs));  // warm-up: allocations, page faults
  for (int64_t i = 0; i < warmup; ++i) run_calls(m, w, out, w.pairs);
  std::vector<double> walls;
  const double c0 = cpu_now();
  for (int64_t i = 0; i < repeat; ++i) {
    const double t0 = now();
    run_calls(m, w, out, w.pairs);
    walls.push_back(now() - t0);
  }
  check_logits(out, spec.name);
  // Process CPU time (all threads), per pass: per CPU-second figures stay comparable on a busy machine.
  const double cpu_s = (cpu_now() - c0) / static_cast<double>(repeat);
  const double s = median(walls), flops = w.flops(c);
  std::printf("device: CPU (%d threads)\n", cpu_threads());
  std::printf("PairRM f32: %lld layers, hidden %lld, %lld heads, ffn %lld, vocab %lld (weights %.2f GiB, %.1f s to "
              "allocate and randomize)\n",
              (long long)c.num_layers, (long long)c.hidden_size, (long long)c.num_heads, (long long)c.intermediate_size,
              (long long)c.vocab_size, m.memory_plan(1, 1).weights / 1073741824.0, load_s);
  std::printf("K = %lld, %lld prompt(s): %lld ordered pairs of %lld tokens (source %lld, candidates %lld), %lld "
              "pairs per call\n",
              (long long)K, (long long)prompts, (long long)w.pairs, (long long)w.L, (long long)spec.source,
              (long long)spec.candidate, (long long)w.per_call);
  std::printf("%.2f s: %.3f pairs/s, %.0f tokens/s, %.1f GFLOP/s (%.1f s per prompt of K = %lld)\n", s, w.pairs / s,
              w.tokens_total() / s, flops / (s * 1e9), s / prompts, (long long)K);
  std::printf("CPU time %.2f s (%.2f threads busy on average): %.3f pairs per CPU-second, %.1f GFLOP per CPU-second\n",
              cpu_s, cpu_s / s, w.pairs / cpu_s, flops / (cpu_s * 1e9));
  const double floor_s = flops / (mm_tflops * 1e12);
  std::printf("floor %.2f s (the FLOPs at the CPU backend's matmul rate measured here, %.1f GFLOP/s): %.2fx floor%s\n",
              floor_s, mm_tflops * 1e3, s / floor_s, repeat > 1 ? " (median pass)" : "");
  if (!o.json.empty()) {
    JsonRow h = header(o, c, K, prompts, "CPU (" + std::to_string(cpu_threads()) + " threads)");
    h.num("matmulTflops", mm_tflops).str("matmulCompute", "CPU backend fp32, 1024^3, best of 3")
        .str("peakWhat", "process max RSS (weights included)").num("loadSeconds", load_s);
    JsonRow r = row_json(spec, w, c, s * 1e3, mm_tflops, max_rss_bytes(),
                         static_cast<double>(m.memory_plan(w.per_call * w.L, w.per_call).total()), repeat, warmup,
                         label_of(spec, w));
    r.num("cpuSeconds", cpu_s).num("pairsPerCpuSecond", w.pairs / cpu_s);
    h.obj("derived", derived({{spec.name, w.L, w.pairs / s, flops / s, flops / static_cast<double>(w.pairs)}}));
    write(o, h, {r});
    std::printf("wrote %s\n", o.json.c_str());
  }
  return 0;
}

// ---- plans: no allocation, any precision ---------------------------------------------------------------
int run_plans(const Options& o, const PairRmConfig& c) {
  const int64_t K = o.get("k", 5);
  std::printf("PairRM %s plans: %lld layers, hidden %lld, heads %lld, ffn %lld, vocab %lld (nothing allocated)\n",
              precision_name(o.precision), (long long)c.num_layers, (long long)c.hidden_size, (long long)c.num_heads,
              (long long)c.intermediate_size, (long long)c.vocab_size);
  for (const RowSpec& s : row_specs(o)) {
    const PairRmWork w = sppo_bench::make_pairrm_work(c, K, s.prompts, s.source, s.candidate, s.batch, s.tokens);
    const PairRmMemoryPlan p = PairRmModel::plan(c, o.precision, w.per_call * w.L, w.per_call);
    std::printf("  %-40s weights %.3f GiB, activations %.3f GiB, total %.3f GiB; %.4g FLOP per pair, %.4g per pass\n",
                label_of(s, w).c_str(), gib(static_cast<double>(p.weights)), gib(static_cast<double>(p.activations)),
                gib(static_cast<double>(p.total())), w.flops(c) / static_cast<double>(w.pairs), w.flops(c));
  }
  return 0;
}

#ifdef SPPO_WITH_CUDA
// ---- CUDA ---------------------------------------------------------------------------------------------
int run_cuda(const Options& o, const PairRmConfig& c) {
  using namespace sppo_bench;
  const int64_t K = o.get("k", 5), prompts = o.get("prompts", 4), repeat = o.get("repeat", 3), warmup = o.get("warmup", 1);
  const double t_start = now();
  auto be = backend_for(Device::CUDA);
  const auto devs = cuda_devices();
  const std::string card = devs.empty() ? "?" : devs[0].name;
  const Dtypes dt = dtypes_of(o.precision);
  const bool half = o.precision == Precision::BF16 || o.precision == Precision::FP16;
  sppo_bench::say_if_smoke();
  const std::size_t chunk_bytes = sppo_bench::full_or_toy(std::size_t{256} << 20, std::size_t{1} << 20);
  const Buffer chunk = random_chunk(be, chunk_bytes / dtype_size(dt.weight), 1, 0.02, dt.weight);
  const double tflops = cuda_matmul_tflops(be, chunk, sppo_bench::full_or_toy<int64_t>(8192, 128), 5, dt.act);
  const std::string compute = half ? std::string(precision_name(o.precision)) + " inputs, CUBLAS_COMPUTE_32F (fp32 accumulation)"
                                   : "CUBLAS_COMPUTE_32F (fp32, no TF32)";
  const std::size_t base = MemorySampler::in_use();
  PairRmModel m(be, c, o.precision);
  fast_init(m, chunk);
  std::printf("device: CUDA %s; %s matmul %.1f TFLOP/s (cuBLASLt %s, 8192^3)\n", card.c_str(),
              precision_name(o.precision), tflops, compute.c_str());
  std::printf("PairRM %s: %lld layers, hidden %lld, %lld heads, ffn %lld, vocab %lld (weights %.2f GiB; %.1f s to here)\n",
              precision_name(o.precision), (long long)c.num_layers, (long long)c.hidden_size, (long long)c.num_heads,
              (long long)c.intermediate_size, (long long)c.vocab_size, gib(static_cast<double>(m.memory_plan(1, 1).weights)),
              now() - t_start);
  std::printf("timing: median of %lld passes after one call and %lld untimed pass(es); host wall clock to synchronize() "
              "(compare downloads its logits), 'ev ms' between CUDA events\n",
              (long long)repeat, (long long)warmup);
  std::printf("\n%-42s %10s %10s %10s %10s %8s %9s %9s %8s\n", "row", "ms", "ev ms", "pairs/s", "tokens/s", "TFLOP/s",
              "peak GiB", "floor ms", "x floor");
  JsonRow h = header(o, c, K, prompts, card);
  h.num("matmulTflops", tflops).str("matmulCompute", compute).num("matmulN", 8192)
      .str("peakWhat", "device memory in use above what the process held before the weights (weights included; cudaMemGetInfo every ms: a lower bound)");
  std::vector<JsonRow> rows;
  std::vector<RowRate> results;
  for (const RowSpec& s : row_specs(o)) {
    const PairRmWork w = make_pairrm_work(c, K, s.prompts, s.source, s.candidate, s.batch, s.tokens);
    std::vector<float> out(static_cast<size_t>(w.pairs), std::numeric_limits<float>::quiet_NaN());
    MemorySampler mem;
    mem.start();
    run_calls(m, w, out, std::min(w.per_call, w.pairs));  // allocations, cuBLASLt's first use of the shapes
    for (int64_t i = 0; i < warmup; ++i) run_calls(m, w, out, w.pairs);
    std::vector<double> wall, ev;
    for (int64_t i = 0; i < repeat; ++i) {
      const CudaTiming t = cuda_timed(*be, [&] { run_calls(m, w, out, w.pairs); });
      wall.push_back(t.wall_ms), ev.push_back(t.event_ms);
    }
    const double peak = static_cast<double>(mem.stop() - base);
    check_logits(out, s.name);
    const std::string label = label_of(s, w);
    JsonRow r = row_json(s, w, c, median(wall), tflops, peak,
                         static_cast<double>(m.memory_plan(w.per_call * w.L, w.per_call).total()), repeat, warmup, label);
    r.num("eventMs", median(ev)).num("wallMs", median(wall));
    const double secs = median(wall) / 1e3, fl = w.flops(c), floor_ms = fl / (tflops * 1e9);
    std::printf("%-42s %10.2f %10.2f %10.1f %10.0f %8.1f %9.2f %9.2f %8.2f\n", label.c_str(), median(wall), median(ev),
                w.pairs / secs, w.tokens_total() / secs, fl / (secs * 1e12), gib(peak), floor_ms, median(wall) / floor_ms);
    std::fflush(stdout);
    rows.push_back(r);
    results.push_back({s.name, w.L, w.pairs / secs, fl / secs, fl / static_cast<double>(w.pairs)});
    write(o, h, rows);  // rewritten after every row: a run stopped by its timeout keeps what it finished
  }
  if (!results.empty()) h.obj("derived", derived(results));
  h.num("seconds", now() - t_start);
  write(o, h, rows);
  if (!o.json.empty()) std::printf("wrote %s\n", o.json.c_str());
  return 0;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  Options o;
  PairRmConfig c;
  try {
    o = parse(argc, argv);
    c = config_of(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_pairrm: %s\n", e.what());
    return 2;
  }
  try {
    if (o.plan_only) return run_plans(o, c);
    if (!o.cuda()) {
      sppo_bench::require_timed_cpu_precision(o.precision);
      return run_cpu(o, c);
    }
    require_device(Device::CUDA);  // names why not: no CUDA in this build, no driver, no device
#ifdef SPPO_WITH_CUDA
    return run_cuda(o, c);
#else
    fail("--device cuda: this build has no CUDA backend (SPPO_CUDA=off or no nvcc)");
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_pairrm: %s\n", e.what());
    return 1;
  }
}
