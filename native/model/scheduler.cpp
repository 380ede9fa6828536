// Continuous batching (model/scheduler.h): the budget, then one loop of steps, each admitting
// waiting prompts, running one decode call over newcomers' prompts and running samples, sampling
// every row at once and retiring finished samples. The cancel point is checked every step.
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

constexpr int64_t kBlockSize = 16;
constexpr int64_t kDefaultBatchTokens = 2048;  // bounded activations, as the former prefill chunks

int64_t blocks_for(int64_t length, int64_t samples, int64_t max_new, int64_t bs) {
  return KVCache::blocks_needed({length}, samples, max_new, bs);
}

}  // namespace

SchedulerBudget resolve_budget(const LlamaModel& model, const GenerateOptions& o, const std::vector<int64_t>& lengths,
                               int64_t samples) {
  const std::size_t per_block = KVCache::pool_bytes(model.config(), model.dtypes().act, 1, kBlockSize);
  return resolve_budget(o, lengths, samples, static_cast<int64_t>(model.backend().available_memory() / 2 / per_block));
}

SchedulerBudget resolve_budget(const GenerateOptions& o, const std::vector<int64_t>& lengths, int64_t samples,
                               int64_t fit_blocks) {
  SPPO_CHECK(o.max_batch_tokens >= 0, "generate: max_batch_tokens must be >= 0 (0 = automatic), got ",
             o.max_batch_tokens);
  SPPO_CHECK(o.max_running_sequences >= 0, "generate: max_running_sequences must be >= 0 (0 = automatic), got ",
             o.max_running_sequences);
  SPPO_CHECK(o.max_cache_tokens >= 0, "generate: max_cache_tokens must be >= 0 (0 = automatic), got ",
             o.max_cache_tokens);
  SchedulerBudget b;
  b.block_size = kBlockSize;
  b.drain = o.drain_batch;
  int64_t longest = 0, biggest = 1, all = 0;
  size_t longest_i = 0, biggest_i = 0;
  for (size_t i = 0; i < lengths.size(); ++i) {
    if (lengths[i] > longest) longest = lengths[i], longest_i = i;
    const int64_t need = blocks_for(lengths[i], samples, o.max_new_tokens, b.block_size);
    if (need > biggest) biggest = need, biggest_i = i;
    all += need;
  }
  b.max_batch_tokens = o.max_batch_tokens > 0 ? o.max_batch_tokens
                                              : std::max({kDefaultBatchTokens, longest, samples});
  b.max_running_sequences = o.max_running_sequences > 0 ? o.max_running_sequences : b.max_batch_tokens;
  // A prompt's prefill runs in one step, and its K samples start together.
  SPPO_CHECK(longest <= b.max_batch_tokens, "generate: max_batch_tokens = ", b.max_batch_tokens,
             " is smaller than prompt ", longest_i, " (", longest,
             " tokens), whose prefill runs in one step; raise max_batch_tokens to at least ", longest);
  SPPO_CHECK(samples <= b.max_batch_tokens, "generate: max_batch_tokens = ", b.max_batch_tokens, " is smaller than the ",
             samples, " samples of one prompt, which decode together; raise it to at least ", samples);
  SPPO_CHECK(samples <= b.max_running_sequences, "generate: max_running_sequences = ", b.max_running_sequences,
             " is smaller than the ", samples, " samples of one prompt, which run together; raise it to at least ",
             samples);
  if (o.max_cache_tokens > 0) {
    b.kv_blocks = o.max_cache_tokens / b.block_size;
    SPPO_CHECK(b.kv_blocks >= biggest, "generate: max_cache_tokens = ", o.max_cache_tokens, " (", b.kv_blocks,
               b.kv_blocks == 1 ? " block of " : " blocks of ", b.block_size, " positions) cannot hold prompt ", biggest_i, " (", lengths[biggest_i],
               " tokens) with its ", samples, " samples of up to ", o.max_new_tokens, " new tokens, which need ",
               biggest, " blocks (", biggest * b.block_size, " positions); raise max_cache_tokens to at least ",
               biggest * b.block_size);
  } else {
    // Less than one prompt's need fails in the KVCache constructor with the bytes named.
    b.kv_blocks = std::max(biggest, std::min(all, fit_blocks));
  }
  return b;
}

int64_t scheduler_max_sequences(int64_t prompts, int64_t samples, const SchedulerBudget& b) {
  const int64_t n = prompts * samples;
  return std::min(n + prompts, 2 * std::min(n, b.max_running_sequences));
}

int64_t scheduler_decode_cap(int64_t prompts, int64_t samples, const SchedulerBudget& b) {
  return std::max<int64_t>(1, std::min({prompts * samples, b.max_running_sequences, b.max_batch_tokens}));
}

bool scheduler_buckets(const GenerateOptions& o, const Backend& be) {
  return o.decode_buckets > 0 || (o.decode_buckets < 0 && be.captures_steps());
}

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

struct Group {           // a prompt with its samples in the running set
  int seq = -1;          // the prompt's cache sequence (read only once prefilled)
  int64_t live = 0;      // samples still running
  int64_t reserved = 0;  // blocks reserved for it (worst case), released as its samples retire
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
  int64_t longest = 0;
  for (const auto& p : prompts) longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
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
  std::vector<int64_t> running;  // sample ids, in the order they joined
  int64_t reserved = 0;
  std::vector<int32_t> tokens;
  std::vector<float> logp;
  std::vector<int> prompt_seqs;
  int64_t finished = 0;

  while (!running.empty() || !waiting.empty()) {
    cancel.check();
    // This step's items: every running sample's last token, then the newcomers' prompts.
    std::vector<DecodeItem> items;
    std::vector<int64_t> rows_of;  // sampler row r -> sample id
    for (int64_t s : running) {
      items.push_back(DecodeItem{seq_of[static_cast<size_t>(s)], &out[static_cast<size_t>(s)].tokens.back(), 1});
      rows_of.push_back(s);
    }
    const int64_t decoding = static_cast<int64_t>(items.size());
    int64_t rows = decoding, after = static_cast<int64_t>(running.size());
    std::vector<int64_t> joined;
    while (!waiting.empty() && (!budget.drain || running.empty())) {
      const int64_t i = waiting.front();
      const int64_t P = static_cast<int64_t>(prompts[static_cast<size_t>(i)].size());
      const int64_t need = blocks_for(P, K, max_new, bs);
      if (rows + P > budget.max_batch_tokens || after + K > budget.max_batch_tokens ||
          after + K > budget.max_running_sequences || reserved + need > budget.kv_blocks)
        break;
      waiting.pop_front();
      Group& g = groups[static_cast<size_t>(i)];
      g.seq = cache.open();
      g.live = K;
      g.reserved = need;
      reserved += need;
      items.push_back(DecodeItem{g.seq, prompts[static_cast<size_t>(i)].data(), P});
      rows += P;
      after += K;
      joined.push_back(i);
      st.prefill_tokens += P;
      if (decoding > 0) ++st.joins_while_running;
    }
    // resolve_budget guarantees that one prompt fits an empty running set.
    SPPO_CHECK(!items.empty(), "generate: internal error: nothing to run with ", waiting.size(), " prompts waiting");
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
      ++finished;
      Group& gr = groups[static_cast<size_t>(s / K)];
      const int64_t P = static_cast<int64_t>(prompts[static_cast<size_t>(s / K)].size());
      gr.reserved -= tail_blocks(P);
      reserved -= tail_blocks(P);
      if (--gr.live == 0) {
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
