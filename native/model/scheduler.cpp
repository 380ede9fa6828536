// Continuous batching (model/scheduler.h): one loop of steps, each preempting what the pool cannot
// grow, resuming swapped prompts, admitting waiting ones, running one decode call over newcomers'
// prompts and running samples, sampling every row at once and retiring finished samples. The
// cancel point is checked every step. The budgets: scheduler_budget.cpp.
#include "model/scheduler.h"

#include <algorithm>
#include <deque>
#include <memory>

#include "backend/workspace.h"
#include "core/error.h"
#include "model/decode_buckets.h"
#include "model/kv_cache.h"

namespace sppo {

namespace {

// Chooses the next token of n rows of logits (backend memory) and brings tokens and log-probs to
// the host.
class Sampler {
 public:
  Sampler(LlamaModel& m, const GenerateOptions& o) : m_(m), o_(o), ws_(m.backend_ptr(), "sampling") {}

  void pick(const Tensor& logits, int64_t n, const std::vector<SampleStream>& streams, std::vector<int32_t>& tokens,
            std::vector<float>& logp) {
    const int64_t V = m_.config().vocab_size;
    Backend& b = m_.backend();
    const bool greedy = o_.greedy || o_.temperature == 0.0;
    ArenaPlan plan;
    plan.add("w", DType::F32, greedy ? 0 : n * V);
    plan.add("tokens", DType::I32, n);
    plan.add("logp", DType::F32, n);
    const auto v = ws_.take(plan);
    tokens.resize(static_cast<size_t>(n));
    logp.assign(static_cast<size_t>(n), 0.f);
    if (greedy) {
      b.argmax_rows(logits, n, V, v[1]);
    } else {
      b.sample_weights(logits, n, V, o_.temperature, v[0]);
      b.sample_pick(v[0], n, V, o_.top_k, o_.top_p, streams.data(), v[1], v[2]);
      b.download(logp.data(), v[2].data, v[2].bytes());
    }
    b.download(tokens.data(), v[1].data, v[1].bytes());  // the step boundary: EOS decides who goes on
    b.synchronize();  // a device backend's deferred errors (a non-finite logit) before the tokens are used
  }

 private:
  LlamaModel& m_;
  const GenerateOptions& o_;
  Workspace ws_;
};

struct Group {           // a prompt with its samples, from admission to its last sample
  int seq = -1;          // the prompt's cache sequence while in the pool (-1: waiting, swapped or done)
  int64_t live = 0;      // samples still running
  int64_t reserved = 0;  // its worst case still committed (blocks), released as its samples retire
  int64_t order = -1;    // admission order: preemption takes the latest
  std::unique_ptr<KVCache::Swapped> swap;  // while preempted: its prompt's and live samples' blocks
};

}  // namespace

void run_scheduler(LlamaModel& model, const std::vector<std::vector<int32_t>>& prompts, int64_t samples,
                   const std::vector<uint64_t>& seeds, const GenerateOptions& opts, const SchedulerBudget& budget,
                   const GenerateReport& report, GenerateStats* stats, const StepHook* hook) {
  const int64_t V = model.config().vocab_size, K = samples, bs = budget.block_size;
  const int64_t np = static_cast<int64_t>(prompts.size()), n = np * K, max_new = opts.max_new_tokens;
  std::vector<Generation> out(static_cast<size_t>(n));  // a prompt's entries are moved out when it finishes
  std::vector<FinishedPrompt> done;                      // this step's finished prompts
  auto finish = [&](int64_t i) {
    FinishedPrompt f{i, {}};
    for (int64_t k = 0; k < K; ++k) f.samples.push_back(std::move(out[static_cast<size_t>(i * K + k)]));
    done.push_back(std::move(f));
  };
  GenerateStats st;
  st.max_batch_tokens = budget.max_batch_tokens;
  st.max_running_sequences = budget.max_running_sequences;
  st.kv_blocks = budget.kv_blocks;
  st.swap_blocks = budget.swap_blocks;
  st.block_size = bs;
  st.free_blocks_at_end = budget.kv_blocks;
  if (n == 0 || max_new == 0) {
    if (n > 0) {  // every generation is finished (empty) at once
      for (int64_t i = 0; i < np; ++i) finish(i);
      report(n, done);
    }
    if (stats) *stats = st;
    return;
  }
  int64_t longest = 0, biggest = 0;
  for (const auto& p : prompts) {
    longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
    biggest = std::max(biggest, KVCache::blocks_needed({static_cast<int64_t>(p.size())}, K, max_new, bs));
  }
  // The worst case admitted prompts may commit (model/scheduler.h). Past the pool it is what the
  // swap space holds less the largest prompt's worst case: a preemption happens only when the
  // running prompts' worst case exceeds the pool, so what is swapped then stays within swap_blocks.
  const bool on_demand = budget.swap_blocks > 0;
  const int64_t commit_limit = budget.kv_blocks + std::max<int64_t>(0, budget.swap_blocks - biggest);
  // What finished prompts of this call used against their worst case (blocks), which sets how far
  // admission may overcommit the pool: as far as it holds prompts that use what those did.
  double worst_done = 0, used_done = 0;
  auto admit_limit = [&]() -> int64_t {
    if (!on_demand) return budget.kv_blocks;
    const double use = used_done > 0 ? used_done / worst_done : budget.assumed_use;
    const double limit = static_cast<double>(budget.kv_blocks) / std::max(use, 1e-9);
    return limit >= static_cast<double>(commit_limit) ? commit_limit
                                                      : std::max(budget.kv_blocks, static_cast<int64_t>(limit));
  };
  const int64_t watermark = scheduler_watermark(budget);
  // Open sequences: running samples + the prompts they belong to (each has a live sample).
  const int64_t max_seqs = scheduler_max_sequences(np, K, budget);
  Backend& be = model.backend();
  const bool bucketed = scheduler_buckets(opts, be);
  const int64_t cap = scheduler_decode_cap(np, K, budget);
  KVCache cache(model, max_seqs, longest + max_new, budget.kv_blocks, bs, bucketed ? decode_max_padding(cap) : 0);
  std::unique_ptr<DecodeBuckets> buckets;
  if (bucketed && max_new > 1) buckets = std::make_unique<DecodeBuckets>(model, cache, cap);
  const CancelPoint& cancel = model.cancel_point();
  Sampler sampler(model, opts);
  Workspace logits_ws(model.backend_ptr(), "the generation logits");
  const std::size_t row_bytes = static_cast<std::size_t>(V) * dtype_size(model.dtypes().act);
  auto is_eos = [&](int32_t t) { return std::find(opts.eos_ids.begin(), opts.eos_ids.end(), t) != opts.eos_ids.end(); };
  auto tail_blocks = [&](int64_t P) { return (P + max_new + bs - 1) / bs - P / bs; };

  std::deque<int64_t> waiting;
  for (int64_t i = 0; i < np; ++i) waiting.push_back(i);
  std::vector<Group> groups(static_cast<size_t>(np));
  std::vector<int> seq_of(static_cast<size_t>(n), -1);
  std::vector<uint8_t> alive(static_cast<size_t>(n), 0);
  std::vector<int64_t> running;  // sample ids in the pool, in the order they joined
  std::vector<int64_t> swapped;  // preempted prompts, earliest admitted first
  int64_t reserved = 0, admitted = 0, swapped_blocks = 0;
  std::vector<int32_t> tokens;
  std::vector<float> logp;
  std::vector<int> prompt_seqs;
  int64_t finished = 0;
  auto growth_of = [&](const std::vector<int64_t>& ss) {
    int64_t g = 0;
    for (int64_t s : ss) g += cache.blocks_to_append(seq_of[static_cast<size_t>(s)], 1);
    return g;
  };
  auto live_samples = [&](int64_t i) {
    std::vector<int64_t> ss;
    for (int64_t k = 0; k < K; ++k)
      if (alive[static_cast<size_t>(i * K + k)]) ss.push_back(i * K + k);
    return ss;
  };
  // Swaps prompt i out whole: its prompt sequence and its live samples, to the host.
  auto preempt = [&](int64_t i) {
    Group& g = groups[static_cast<size_t>(i)];
    std::vector<int> seqs{g.seq};
    for (int64_t s : live_samples(i)) seqs.push_back(seq_of[static_cast<size_t>(s)]), seq_of[static_cast<size_t>(s)] = -1;
    g.swap = std::make_unique<KVCache::Swapped>(cache.swap_out(seqs));
    g.seq = -1;
    running.erase(std::remove_if(running.begin(), running.end(), [&](int64_t s) { return s / K == i; }), running.end());
    swapped.insert(std::upper_bound(swapped.begin(), swapped.end(), i,
                                    [&](int64_t a, int64_t b) { return groups[static_cast<size_t>(a)].order < groups[static_cast<size_t>(b)].order; }),
                   i);
    swapped_blocks += g.swap->blocks;
    ++st.preemptions;
    st.swapped_out_blocks += g.swap->blocks;
    st.peak_swapped_blocks = std::max(st.peak_swapped_blocks, swapped_blocks);
    SPPO_CHECK(swapped_blocks <= budget.swap_blocks, "generate: internal error: ", swapped_blocks,
               " KV blocks swapped out with room for ", budget.swap_blocks);
  };

  while (!running.empty() || !swapped.empty() || !waiting.empty()) {
    cancel.check();
    // Preemption: this step's running samples must find their new blocks free.
    bool preempted = false;
    int64_t growth = growth_of(running);
    while (on_demand && growth > cache.free_blocks()) {
      int64_t victim = -1;
      for (int64_t s : running)
        if (victim < 0 || groups[static_cast<size_t>(s / K)].order > groups[static_cast<size_t>(victim)].order) victim = s / K;
      // A prompt alone fits: its worst case is within the pool, and nothing else holds blocks.
      SPPO_CHECK(victim >= 0 && std::any_of(running.begin(), running.end(), [&](int64_t s) { return s / K != victim; }),
                 "generate: internal error: one prompt's samples need ", growth, " KV blocks with ",
                 cache.free_blocks(), " free");
      preempt(victim);
      preempted = true;
      growth = growth_of(running);
    }
    int64_t rows = static_cast<int64_t>(running.size()), after = rows;
    // Free blocks this step leaves for newcomers: the running samples' growth taken first.
    int64_t spare = cache.free_blocks() - growth;
    // Swapped prompts resume first, earliest admitted first, when their blocks, this step's growth
    // of their samples and the watermark are free; never in a step that preempted. (Their blocks
    // and growth are within their worst case, so with nothing else running they fit.)
    while (!preempted && !swapped.empty()) {
      const int64_t i = swapped.front();
      Group& g = groups[static_cast<size_t>(i)];
      int64_t next = 0;  // the blocks its samples take in this step once back
      for (size_t q = 1; q < g.swap->lengths.size(); ++q) next += g.swap->blocks_to_append_one(q, bs);
      const int64_t live = g.live, takes = g.swap->blocks + next;
      if (rows + live > budget.max_batch_tokens || after + live > budget.max_running_sequences ||
          takes + (after > 0 ? watermark : 0) > spare)
        break;
      swapped.erase(swapped.begin());
      const std::vector<int> seqs = cache.swap_in(*g.swap);
      swapped_blocks -= g.swap->blocks;
      spare -= takes;
      g.swap.reset();
      g.seq = seqs[0];
      size_t q = 1;
      for (int64_t s : live_samples(i)) {
        seq_of[static_cast<size_t>(s)] = seqs[q++];
        running.push_back(s);
      }
      rows += live;
      after += live;
      ++st.swap_ins;
    }
    // This step's items: every running sample's last token, then the newcomers' prompts.
    std::vector<DecodeItem> items;
    std::vector<int64_t> rows_of;  // sampler row r -> sample id
    for (int64_t s : running) {
      items.push_back(DecodeItem{seq_of[static_cast<size_t>(s)], &out[static_cast<size_t>(s)].tokens.back(), 1});
      rows_of.push_back(s);
    }
    const int64_t decoding = static_cast<int64_t>(items.size());
    std::vector<int64_t> joined;
    // Waiting prompts join once nothing is swapped out (first come, first served).
    while (!waiting.empty() && swapped.empty() && (!budget.drain || running.empty())) {
      const int64_t i = waiting.front();
      const int64_t P = static_cast<int64_t>(prompts[static_cast<size_t>(i)].size());
      const int64_t need = KVCache::blocks_needed({P}, K, max_new, bs);
      const int64_t now = (P + bs - 1) / bs + K + (after > 0 ? watermark : 0);  // its prefill, then a block a sample
      if (rows + P > budget.max_batch_tokens || after + K > budget.max_batch_tokens ||
          after + K > budget.max_running_sequences || reserved + need > admit_limit() ||
          (on_demand && now > spare))
        break;
      waiting.pop_front();
      Group& g = groups[static_cast<size_t>(i)];
      g.seq = cache.open();
      g.live = K;
      g.reserved = need;
      g.order = admitted++;
      reserved += need;
      spare -= (P + bs - 1) / bs + K;
      items.push_back(DecodeItem{g.seq, prompts[static_cast<size_t>(i)].data(), P});
      rows += P;
      after += K;
      joined.push_back(i);
      st.prefill_tokens += P;
      if (decoding > 0) ++st.joins_while_running;
    }
    // resolve_budget guarantees that one prompt fits an empty running set.
    SPPO_CHECK(!items.empty(), "generate: internal error: nothing to run with ", waiting.size(), " prompts waiting and ",
               swapped.size(), " swapped out");
    const int64_t nj = static_cast<int64_t>(joined.size());
    Tensor lg;
    if (buckets && nj == 0) {
      lg = model.decode_bucketed(cache, items, *buckets).slice(0, decoding * V);  // the real rows
      ++st.bucketed_steps;
      st.padding_rows += buckets->sizes()[buckets->bucket_for(decoding)] - decoding;
    } else {
      ArenaPlan plan;
      plan.add("logits", model.dtypes().act, (decoding + nj * K) * V);
      lg = logits_ws.take(plan)[0];
      model.decode(cache, items, lg);
    }
    ++st.steps;
    if (decoding > 0 && nj > 0) ++st.mixed_steps;
    st.decode_tokens += decoding;
    st.peak_step_tokens = std::max(st.peak_step_tokens, rows);
    st.peak_blocks_in_use = std::max(st.peak_blocks_in_use, cache.num_blocks() - cache.free_blocks());
    // Newcomer j's logits row (decoding + j) becomes rows decoding + j*K .. + K-1 of its samples;
    // from the last newcomer down, so that no row is overwritten before it is copied.
    char* base = static_cast<char*>(lg.data);
    for (int64_t j = nj - 1; j >= 0; --j)
      for (int64_t k = K - 1; k >= 0; --k) {
        const int64_t dst = decoding + j * K + k, src = decoding + j;
        if (dst != src) be.copy(base + dst * row_bytes, base + src * row_bytes, row_bytes);
      }
    for (int64_t j = 0; j < nj; ++j) {
      const int64_t i = joined[static_cast<size_t>(j)];
      for (int64_t k = 0; k < K; ++k) {
        const int64_t s = i * K + k;
        seq_of[static_cast<size_t>(s)] = cache.fork(groups[static_cast<size_t>(i)].seq);
        alive[static_cast<size_t>(s)] = 1;
        running.push_back(s);
        rows_of.push_back(s);
      }
    }
    st.peak_running = std::max<int64_t>(st.peak_running, static_cast<int64_t>(running.size()));
    std::vector<SampleStream> streams;
    for (int64_t s : rows_of)
      streams.push_back({seeds[static_cast<size_t>(s / K)], static_cast<uint64_t>(s % K),
                         static_cast<uint64_t>(out[static_cast<size_t>(s)].tokens.size())});
    sampler.pick(lg, static_cast<int64_t>(rows_of.size()), streams, tokens, logp);
    // Take the tokens; retire finished samples, their blocks back to the pool at once.
    std::vector<int64_t> still;
    for (size_t r = 0; r < rows_of.size(); ++r) {
      const int64_t s = rows_of[r];
      Generation& g = out[static_cast<size_t>(s)];
      g.tokens.push_back(tokens[r]);
      g.logprobs.push_back(logp[r]);
      g.stopped_at_eos = is_eos(tokens[r]);
      if (!g.stopped_at_eos && static_cast<int64_t>(g.tokens.size()) < max_new) {
        still.push_back(s);
        continue;
      }
      cache.close(seq_of[static_cast<size_t>(s)]);
      seq_of[static_cast<size_t>(s)] = -1;
      alive[static_cast<size_t>(s)] = 0;
      ++finished;
      Group& gr = groups[static_cast<size_t>(s / K)];
      const int64_t P = static_cast<int64_t>(prompts[static_cast<size_t>(s / K)].size());
      gr.reserved -= tail_blocks(P);
      reserved -= tail_blocks(P);
      if (--gr.live == 0) {
        // Its blocks at their most: the prompt's, and each sample's tail to its last position.
        double used = static_cast<double>((P + bs - 1) / bs);
        for (int64_t k = 0; k < K; ++k)
          used += static_cast<double>((P + static_cast<int64_t>(out[static_cast<size_t>((s / K) * K + k)].tokens.size()) +
                                       bs - 1) / bs - P / bs);
        used_done += used;
        worst_done += static_cast<double>(KVCache::blocks_needed({P}, K, max_new, bs));
        finish(s / K);
        cache.close(gr.seq);
        reserved -= gr.reserved;  // the prompt's own blocks
        gr.reserved = 0;
        gr.seq = -1;
      }
    }
    const bool retired = still.size() < rows_of.size();
    running.swap(still);
    if (hook) {
      prompt_seqs.clear();
      for (const Group& g : groups)
        if (g.seq >= 0) prompt_seqs.push_back(g.seq);
      (*hook)(cache, prompt_seqs);
    }
    if (retired) {
      report(finished, done);
      done.clear();
    }
  }
  st.free_blocks_at_end = cache.free_blocks();
  SPPO_CHECK(reserved == 0, "generate: internal error: ", reserved, " KV blocks still reserved at the end");
  if (stats) *stats = st;
}

}  // namespace sppo
