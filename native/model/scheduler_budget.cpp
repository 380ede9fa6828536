// The budgets of continuous batching (model/scheduler.h): resolve_budget and the sizes a call's
// cache and buckets are made with, shared by the scheduler and the static memory planner.
#include <algorithm>
#include <limits>

#include "core/error.h"
#include "core/host_memory.h"
#include "model/kv_cache.h"
#include "model/scheduler.h"

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
  return resolve_budget(o, lengths, samples, static_cast<int64_t>(model.backend().available_memory() / 2 / per_block),
                        static_cast<int64_t>(host_available_memory() / 2 / per_block));
}

SchedulerBudget resolve_budget(const GenerateOptions& o, const std::vector<int64_t>& lengths, int64_t samples,
                               int64_t fit_blocks, int64_t host_fit_blocks) {
  SPPO_CHECK(o.max_batch_tokens >= 0, "generate: max_batch_tokens must be >= 0 (0 = automatic), got ",
             o.max_batch_tokens);
  SPPO_CHECK(o.max_running_sequences >= 0, "generate: max_running_sequences must be >= 0 (0 = automatic), got ",
             o.max_running_sequences);
  SPPO_CHECK(o.max_cache_tokens >= 0, "generate: max_cache_tokens must be >= 0 (0 = automatic), got ",
             o.max_cache_tokens);
  SPPO_CHECK(o.max_swap_tokens >= -1, "generate: max_swap_tokens must be >= -1 (-1 = automatic, 0 = none), got ",
             o.max_swap_tokens);
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
  // Swap space past what admitting every prompt at once needs is never used: the scheduler
  // commits at most kv_blocks + swap_blocks - biggest (model/scheduler.cpp), so that is
  // all - kv_blocks + biggest, and none when the pool holds every prompt's worst case.
  const int64_t over = all > b.kv_blocks ? all - b.kv_blocks + biggest : 0;
  if (b.drain || o.max_swap_tokens == 0) b.swap_blocks = 0;
  else if (o.max_swap_tokens > 0) b.swap_blocks = std::min(over, o.max_swap_tokens / b.block_size);
  else {
    const bool huge = b.kv_blocks > std::numeric_limits<int64_t>::max() / kSwapPools;  // no overflow below
    b.swap_blocks = std::min({over, huge ? over : kSwapPools * b.kv_blocks, std::max<int64_t>(0, host_fit_blocks)});
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

int64_t scheduler_watermark(const SchedulerBudget& b) { return std::max<int64_t>(1, b.kv_blocks / 100); }

bool scheduler_buckets(const GenerateOptions& o, const Backend& be) {
  return o.decode_buckets > 0 || (o.decode_buckets < 0 && be.captures_steps());
}

}  // namespace sppo
