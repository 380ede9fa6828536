// Continuous batching for generate() (CONTRACT). Host-side bookkeeping over LlamaModel::decode and
// the backend's sampler ops only, so the same code drives the CPU and the CUDA backend.
//
// Prompts wait in a queue, in input order; each brings its K samples. A running set of samples
// decodes one token each per step, in ONE decode call together with the prefill of the prompts
// admitted in that step (decode items are ragged: a newcomer's item is its whole prompt, a running
// sample's item is its last token; the call returns the logits of each item's last row). A
// newcomer's prompt is prefilled once into its own cache sequence, forked into its K samples, and
// its logits row is copied to K sampler rows. The prompt sequence stays open until its last sample
// retires, so its blocks, the partial last one included, are shared by every sample for their whole
// life and copy-on-write (KVCache::append) gives each sample its own copy before its first write:
// a shared prompt block is never written by a sample. A sample retires on EOS or max_new_tokens;
// its blocks return to the pool at once (the prompt's with its last sample), and the next step may
// admit waiting prompts in their place without waiting for the rest of the batch.
//
// Admission (first-come, first-served: the head of the queue waits rather than being overtaken):
// the head prompt joins a step when
//   - tokens:    this step's rows (one per running sample + every newcomer's prompt) stay within
//                max_batch_tokens, and so do the running samples of later steps;
//   - sequences: the running samples stay within max_running_sequences;
//   - memory:    with swap_blocks = 0 (worst-case reservation), the worst case of the prompts
//                admitted and not finished (KVCache::blocks_needed: the prompt's blocks + each
//                sample's tail to max_new_tokens) plus the newcomer's stays within kv_blocks;
//                allocation never exceeds reservation, so no sample ever runs out of blocks.
//                With swap_blocks > 0 (on demand, the default), that worst case may exceed the
//                pool by the ratio of worst case to use of the call's finished prompts (blocks at
//                their last position against blocks_needed; before any has finished, 1 /
//                assumed_use: the worst case), so that the pool holds the admitted prompts if they
//                use what those did; never past kv_blocks + swap_blocks - the largest worst case.
//                And the blocks actually free must hold, after this step's growth of the running
//                samples, the newcomer's prefill and one block for each of its samples, leaving a
//                watermark (1% of the pool) while others run. Responses that all run to
//                max_new_tokens thus keep to the worst case; short ones let many more in.
// Preemption (on demand only): when a step's running samples need more new blocks than are free
// (KVCache::blocks_to_append), the prompt that joined last is swapped out whole (its prompt and
// live samples' blocks to host memory, KVCache::swap_out) and waits, ahead of every prompt not yet
// admitted, until its blocks, the blocks its samples take in the step it resumes and the
// watermark are free again; it then resumes from the same bytes (swap_in), never in a step that
// preempted. A prompt alone always
// fits (resolve_budget keeps kv_blocks >= the largest worst case), and the worst-case bound keeps
// the host memory within swap_blocks, so the call always ends and swapped bytes never exceed
// their budget. Swapping is bitwise: a preempted sample's tokens are those it would have drawn.
// With `drain` set, prompts are admitted only into an empty running set: the static batching of
// former releases (a batch is filled to the budget and decoded until all of it has finished), kept
// as the reference the benchmark and the tests compare against; it reserves the worst case.
//
// Decode-only steps (no newcomer) may run padded to a bucket (model/decode_buckets.h,
// GenerateOptions::decode_buckets): the cache is then made with its padding scratch, and the
// sampler reads the first rows of the bucket's logits.
//
// Results do not depend on any of this: every row of a decode call is computed from its own
// sequence alone and sample k of prompt i draws from Philox(seed_i, k, step), so the tokens and
// log-probabilities of each (prompt, sample) are bitwise the same for any budget, batch mix or
// prompt order (tests/test_model_scheduler.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/generate.h"

namespace sppo {

class KVCache;

struct SchedulerBudget {
  int64_t max_batch_tokens = 0;       // rows of one decode call
  int64_t max_running_sequences = 0;  // samples decoding at once
  int64_t kv_blocks = 0;              // KV pool size in blocks (the memory budget)
  int64_t swap_blocks = 0;            // host blocks for preempted prompts; 0 = worst-case reservation
  // On demand: the fraction of its worst case a prompt is taken to use until a prompt of the call
  // has finished (then the finished prompts' own fraction). 1 = the worst case; tests lower it to
  // overcommit from the first step.
  double assumed_use = 1.0;
  int64_t block_size = 16;
  bool drain = false;                 // static batching (see above)
};

// The budget for a call: GenerateOptions' fields, 0 meaning automatic (max_batch_tokens: max(2048,
// the longest prompt, samples); max_running_sequences: max_batch_tokens; the KV pool: what all
// prompts need at once, capped at half the backend's available memory, and never less than the
// largest single prompt needs), and max_swap_tokens -1 automatic (kSwapPools times the pool, capped
// at half the host's available memory; none when the pool holds every prompt's worst case, or
// with drain_batch). Throws sppo::Error naming the option and the numbers when a budget cannot
// hold even one prompt with its samples.
SchedulerBudget resolve_budget(const LlamaModel& model, const GenerateOptions& o, const std::vector<int64_t>& lengths,
                               int64_t samples);
// The same from the options alone, with an automatic KV pool capped at `fit_blocks` (the model's
// version passes half the backend's available memory; the static planner, train/memory_plan.h,
// plans the whole need) and automatic swap space capped at `host_fit_blocks`.
SchedulerBudget resolve_budget(const GenerateOptions& o, const std::vector<int64_t>& lengths, int64_t samples,
                               int64_t fit_blocks, int64_t host_fit_blocks);
// Automatic swap space, in KV pools: admission may then commit up to about 4 times the pool.
constexpr int64_t kSwapPools = 3;
// Cache sequences a call opens at most: running samples and the prompts they fork from.
int64_t scheduler_max_sequences(int64_t prompts, int64_t samples, const SchedulerBudget& b);
// The most rows a decode-only step of the call can have: the cap of its decode buckets
// (model/decode_buckets.h), within the token and sequence budgets.
int64_t scheduler_decode_cap(int64_t prompts, int64_t samples, const SchedulerBudget& b);
// Blocks an on-demand admission or a swap-in leaves free while others run (1% of the pool, at
// least one), so that a newcomer does not preempt someone at the next block boundary.
int64_t scheduler_watermark(const SchedulerBudget& b);
// Whether a call pads its decode-only steps to buckets (GenerateOptions::decode_buckets).
bool scheduler_buckets(const GenerateOptions& o, const Backend& be);

// Called after every step with the cache and the prompt sequences of the running prompts (tests
// check that their blocks are never written).
using StepHook = std::function<void(const KVCache& cache, const std::vector<int>& prompt_seqs)>;

// generate_each()'s work once the arguments are checked: each prompt's samples go to `report`
// (model/generate.h GenerateReport) in the step its last sample finishes, moved out of the
// scheduler, which then holds nothing of that prompt. The hook, when set, runs after every step,
// before that step's report. `stats` and `hook` may be null.
void run_scheduler(LlamaModel& model, const std::vector<std::vector<int32_t>>& prompts, int64_t samples,
                   const std::vector<uint64_t>& seeds, const GenerateOptions& opts, const SchedulerBudget& budget,
                   const GenerateReport& report, GenerateStats* stats, const StepHook* hook = nullptr);

}  // namespace sppo
