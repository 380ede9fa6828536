// The static memory planner (train/memory_plan.h).
#include "train/memory_plan.h"

#include <algorithm>
#include <limits>
#include <sstream>

#include "backend/buffer.h"
#include "backend/workspace.h"
#include "core/error.h"
#include "model/decode_buckets.h"
#include "model/kv_cache.h"
#include "model/scheduler.h"
#include "model/llama_plans.h"
#include "model/param_layout.h"
#include "train/grad_buckets.h"
#include "train/preference_step.h"

namespace sppo {

namespace {

std::size_t ws(const ArenaPlan& p) { return Workspace::allocation(p); }

std::string gib(std::size_t b) { return format_bytes(static_cast<double>(b)); }

std::string count(int64_t n, const char* what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

// The weights' arena and the rope table every Llama model holds.
void add_llama_weights(StagePlan& s, const LlamaConfig& c, const Dtypes& dt, int64_t params) {
  ArenaPlan w;
  w.add("weights", dt.weight, params);
  s.items.push_back({"weights", w.bytes(), std::to_string(params) + " parameters, " + dtype_name(dt.weight)});
  s.items.push_back({"rope table", static_cast<std::size_t>(c.head_dim / 2) * sizeof(float), "fp32 inverse frequencies"});
}

void check_positive(int64_t v, const char* what) {
  SPPO_CHECK(v >= 1, "memory plan: ", what, " must be >= 1, got ", v);
}

// Keeps every product the plan forms (tokens x hidden, rows x vocab, in bytes) far inside int64:
// at most 2^40 positions per call, which no device holds anyway.
void check_positions(int64_t a, int64_t b, const char* what) {
  constexpr int64_t kMax = int64_t{1} << 40;
  SPPO_CHECK(a <= kMax / b, "memory plan: ", what, " = ", a, " x ", b, " is more than 2^40 positions in one call");
}

}  // namespace

std::size_t StagePlan::total() const {
  std::size_t t = 0;
  for (const PlanItem& i : items) t += i.bytes;
  return t;
}

StagePlan plan_training_memory(const LlamaConfig& c, Precision p, const TrainingPlanOptions& o) {
  check_llama_precision(p);
  validate_config(c);
  check_positive(o.pairs, "pairs per micro-batch");
  check_positive(o.seq_len, "sequence length");
  check_positive(o.world, "world size");
  check_positive(o.bucket_bytes, "bucket bytes");
  check_positions(2 * o.pairs, o.seq_len, "rows x sequence length");
  const Dtypes dt = dtypes_of(p);
  const DType gdt = resolve_grad_dtype(p, o.grad_dtype);  // the trainer's gradient arena
  const ParamLayout layout(c);
  const int64_t total = layout.total();
  const int64_t rows = 2 * o.pairs, N = rows * o.seq_len;
  StagePlan s;
  s.stage = "training";
  add_llama_weights(s, c, dt, total);
  // Rank 0's layout: its pieces are the full ceil(bucket / W) ones, so its share is the largest.
  const StateLayout st = plan_state_layout(layout, dtype_size(gdt), o.bucket_bytes, o.world, 0, o.zero1);
  const std::string share = st.sharded ? ", rank 0's ZeRO-1 share of " + std::to_string(o.world) : "";
  if (dt.weight != dt.grad)
    s.items.push_back({"master weights", static_cast<std::size_t>(st.state_len) * dtype_size(dt.grad),
                       std::string(dtype_name(dt.grad)) + share});
  s.items.push_back({"gradients", static_cast<std::size_t>(st.padded_total) * dtype_size(gdt),
                     count(static_cast<int64_t>(st.buckets.size()), "bucket") + " of " + gib(o.bucket_bytes) + ", " +
                         dtype_name(gdt)});
  const std::size_t slots = optimizer_slots(o.optimizer).size();
  s.items.push_back({"optimizer state", static_cast<std::size_t>(st.state_len) * dtype_size(dt.grad) * slots,
                     std::string(optimizer_kind_name(o.optimizer)) + ", " + count(static_cast<int64_t>(slots), "slot") +
                         ", " + dtype_name(dt.grad) + share});
  const std::string shape = std::to_string(rows) + " x " + std::to_string(o.seq_len) + " (" +
                            std::to_string(o.pairs) + " pairs)";
  s.items.push_back({"activations", ws(llama_activation_plan(c, dt, N, true, o.checkpointing)),
                     shape + (o.checkpointing ? ", checkpointed: layer inputs + one layer" : ", every layer kept")});
  s.items.push_back({"backward temporaries", ws(llama_backward_plan(c, dt, N)), "one layer's gradients of activations"});
  const int64_t resp = rows * (o.seq_len - 1);  // every position but the first may be a response token
  s.items.push_back({"log-prob head", ws(llama_logprob_head_plan(c, dt, resp, rows)),
                     "chunks of " + std::to_string(head_chunk_rows(c, resp)) + " rows x " +
                         std::to_string(c.vocab_size) + " logits"});
  std::size_t scratch = ws(llama_batch_plan(c, dt, N)) + ws(preference_loss_plan(dt, o.pairs)) + sizeof(double);
  if (st.sharded) {
    // The gather buffer: a checkpoint's optimizer slots go through it bucket by bucket (F32), the
    // last bucket's weights after each step.
    int64_t widest = 0;
    for (const GradBucket& b : st.buckets) widest = std::max(widest, bucket_piece(b, 0, o.world, total).padded_end - b.begin);
    ArenaPlan g;
    g.add("gathered", DType::F32, widest);
    scratch += ws(g);
  }
  s.items.push_back({"scratch", scratch, "batch upload, loss, norm" + std::string(st.sharded ? ", ZeRO-1 gather" : "")});
  return s;
}

StagePlan plan_inference_memory(const LlamaConfig& c, Precision p, int64_t rows, int64_t seq_len, InferenceHead head) {
  check_llama_precision(p);
  validate_config(c);
  check_positive(rows, "rows");
  check_positive(seq_len, "sequence length");
  check_positions(rows, seq_len, "rows x sequence length");
  const Dtypes dt = dtypes_of(p);
  const int64_t N = rows * seq_len;
  StagePlan s;
  s.stage = "inference";
  add_llama_weights(s, c, dt, ParamLayout(c).total());
  s.items.push_back({"activations", ws(llama_activation_plan(c, dt, N, false, false)),
                     std::to_string(rows) + " x " + std::to_string(seq_len) + ", two layers' outputs (no gradients)"});
  std::size_t h = 0;
  std::string what;
  if (head == InferenceHead::LogProbs) {
    const int64_t resp = rows * (seq_len - 1);
    h = ws(llama_logprob_head_plan(c, dt, resp, rows));
    what = "log-probs, chunks of " + std::to_string(head_chunk_rows(c, resp)) + " rows";
  } else if (head == InferenceHead::Scores) {
    h = ws(llama_score_head_plan(c, dt, rows));
    what = "scores at each row's last token";
  } else {
    h = ws(llama_logits_plan(c, dt, N));
    what = "logits, chunks of " + std::to_string(head_chunk_rows(c, N)) + " rows";
  }
  s.items.push_back({"head", h, what});
  s.items.push_back({"scratch", ws(llama_batch_plan(c, dt, N)), "batch upload"});
  return s;
}

StagePlan plan_generation_memory(const LlamaConfig& c, Precision p, const GenerationPlanOptions& o) {
  check_llama_precision(p);
  validate_config(c);
  check_positive(o.prompts, "prompts per call");
  check_positive(o.samples, "samples per prompt");
  check_positive(o.prompt_len, "prompt length");
  check_positive(o.min_prompt_len, "shortest prompt length");
  SPPO_CHECK(o.min_prompt_len <= o.prompt_len, "memory plan: the shortest prompt length (", o.min_prompt_len,
             ") must be <= the prompt length (", o.prompt_len, ")");
  check_positive(o.max_new_tokens, "max new tokens");
  check_positions(o.prompts, o.samples, "prompts x samples");
  check_positions(o.prompts * o.samples, o.prompt_len + o.max_new_tokens, "sequences x (prompt + new tokens)");
  const Dtypes dt = dtypes_of(p);
  const int64_t V = c.vocab_size, np = o.prompts, K = o.samples, n = np * K, P = o.prompt_len, P0 = o.min_prompt_len;
  // The budget exactly as generate() resolves it (model/scheduler.h), with the whole need planned.
  GenerateOptions go;
  go.max_new_tokens = o.max_new_tokens;
  go.max_batch_tokens = o.max_batch_tokens;
  go.max_running_sequences = o.max_running_sequences;
  go.max_cache_tokens = o.max_cache_tokens;
  go.max_swap_tokens = o.max_swap_tokens;
  const std::vector<int64_t> lengths(static_cast<size_t>(np), P);
  // Host memory is not planned here: automatic swap space at its largest, the most prompts at once.
  SchedulerBudget b = resolve_budget(go, lengths, K, std::numeric_limits<int64_t>::max(),
                                     std::numeric_limits<int64_t>::max());
  const int64_t bs = b.block_size, B = b.max_batch_tokens;
  // A prompt's worst-case blocks over the lengths it may have. Not monotone in the length: the
  // samples' tails start at the prompt's last full block, so a shorter prompt may need more. The
  // tail repeats every bs lengths and the prompt's own blocks only grow, so the fewest lie in the
  // first bs lengths and the most in the last bs.
  auto need_of = [&](int64_t len) { return KVCache::blocks_needed({len}, K, o.max_new_tokens, bs); };
  int64_t need_min = need_of(P0), need_max = need_of(P);
  for (int64_t len = P0; len <= std::min(P, P0 + bs - 1); ++len) need_min = std::min(need_min, need_of(len));
  for (int64_t len = std::max(P0, P - bs + 1); len <= P; ++len) need_max = std::max(need_max, need_of(len));
  if (o.max_cache_tokens == 0) {  // the automatic pool: all at once, and then nothing to swap
    b.kv_blocks = std::max(b.kv_blocks, np * need_max);
    b.swap_blocks = 0;
  }
  // The scheduler's admission rule (model/scheduler.h): at most g prompts run at once, their
  // samples within the sequence and token budgets, and by memory:
  //  - reserving the worst case: their worst-case blocks within the pool;
  //  - on demand (swap space): their worst case within pool + swap - the largest one; and in the
  //    pool each holds its prompt's blocks and a block per live sample (or the spare one the
  //    admission set aside for it), so at most pool * K / (K + prompt blocks) samples at once.
  // A step admits at most `first`: their prefill within the token budget and, on demand, each
  // after the first finding its prefill, a block per sample and the watermark free.
  const int64_t pre = (P0 + bs - 1) / bs;
  int64_t by_memory = b.kv_blocks / need_min, first_by_memory = by_memory, samples_fit = 0;
  if (b.swap_blocks > 0) {
    const int64_t committed = (b.kv_blocks + std::max<int64_t>(0, b.swap_blocks - need_max)) / need_min;
    samples_fit = std::max(K, b.kv_blocks * K / (K + pre));
    by_memory = std::min(committed, (samples_fit + K - 1) / K);
    first_by_memory = std::max<int64_t>(1, (b.kv_blocks - scheduler_watermark(b)) / (pre + K));
  }
  const int64_t g = std::max<int64_t>(1, std::min({np, std::min(b.max_running_sequences, B) / K, by_memory}));
  const int64_t first = std::max<int64_t>(1, std::min({g, B / P0, first_by_memory}));
  const int64_t running = samples_fit > 0 ? std::min(g * K, samples_fit) : g * K;  // samples at once, at most
  const bool all_at_once = g == np && np * P <= B;  // every prompt joins the first step, whatever its length
  StagePlan s;
  s.stage = "generation";
  s.kv = KvPoolPlan{b.kv_blocks, bs};
  add_llama_weights(s, c, dt, ParamLayout(c).total());
  const std::size_t kv = KVCache::allocation_bytes(c, dt.act, scheduler_max_sequences(np, K, b), P + o.max_new_tokens,
                                                   b.kv_blocks, bs,
                                                   o.decode_buckets ? decode_max_padding(scheduler_decode_cap(np, K, b)) : 0);
  s.items.push_back({"KV cache", kv,
                     std::to_string(b.kv_blocks) + " blocks of " + std::to_string(bs) + " positions: " +
                         std::to_string(np) + " prompts x " + std::to_string(K) + " samples x (" + std::to_string(P) +
                         " + " + std::to_string(o.max_new_tokens) + "), " + std::to_string(c.num_layers) +
                         " layers x " + std::to_string(c.num_kv_heads) + " kv heads x " + std::to_string(c.head_dim) +
                         " x K,V x " + dtype_name(dt.act) +
                         (b.swap_blocks > 0
                              ? "; prompts join past their worst case as finished ones use less, up to " + std::to_string(g) + " at once, " +
                                    "preempted ones swapped to at most " + std::to_string(b.swap_blocks) +
                                    " blocks (" + gib(static_cast<std::size_t>(b.swap_blocks) *
                                                      KVCache::pool_bytes(c, dt.act, 1, bs)) + ") of host memory" +
                                    (o.max_swap_tokens < 0 ? ", less if half the host's free memory is less" : "")
                              : "")});
  // Rows of a step: the first has the admitted prompts' prefill; later ones decode one row per
  // running sample, plus, when prompts still wait, newcomers' prompts up to the token budget.
  // A later step decodes d running samples and prefills j newcomers (j <= first, d + j*K <= running).
  const int64_t later_rows = all_at_once ? n : std::min(B, running + first * std::max<int64_t>(0, P - K));
  ArenaPlan step = llama_decode_plan(c, dt, std::min(B, first * P), first);
  // With buckets, the steps after an all-at-once first step are decode-only: bucketed, in the
  // buckets' buffer below; otherwise a later step may prefill newcomers eagerly.
  if (o.max_new_tokens > 1 && !(o.decode_buckets && all_at_once)) {
    const ArenaPlan later = llama_decode_plan(c, dt, later_rows, running);
    if (later.bytes() > step.bytes()) step = later;
  }
  s.items.push_back({"decode step", ws(step),
                     all_at_once ? "prefill of " + std::to_string(std::min(B, first * P)) + " rows, then " + std::to_string(n) +
                                       (o.decode_buckets ? " rows a step in the decode buckets" : " rows a step")
                                 : std::to_string(first) + " of " + std::to_string(np) + " prompts in the first step, "
                                       "then up to " + std::to_string(later_rows) + " rows a step (the budgets)"});
  if (o.decode_buckets && o.max_new_tokens > 1) {
    const int64_t cap = scheduler_decode_cap(np, K, b);
    s.items.push_back({"decode buckets", decode_buckets_bytes(c, dt, cap),
                       std::to_string(decode_bucket_sizes(cap).size()) + " bucket sizes up to " + std::to_string(cap) +
                           " rows, one buffer (inputs, activations, logits)"});
  }
  const int64_t rows = running;  // sampled rows of a step, at most (n when every prompt joins at once)
  ArenaPlan lg, sp;
  lg.add("logits", dt.act, rows * V);
  sp.add("w", DType::F32, o.greedy ? 0 : rows * V);
  sp.add("tokens", DType::I32, rows);
  sp.add("logp", DType::F32, rows);
  s.items.push_back({"logits and sampler", ws(lg) + ws(sp), std::to_string(rows) + " rows x " + std::to_string(V)});
  return s;
}

void require_plan_fits(const StagePlan& plan, std::size_t available, const std::string& device) {
  const std::size_t need = plan.total();
  if (need <= available) return;
  std::ostringstream parts;
  for (size_t i = 0; i < plan.items.size(); ++i)
    parts << (i ? ", " : "") << plan.items[i].name << " " << gib(plan.items[i].bytes);
  fail("the ", plan.stage, " plan needs ", gib(need), " on ", device, " (", parts.str(), ") but ", gib(available),
       " is available");
}

}  // namespace sppo
