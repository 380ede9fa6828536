// Batched sampling with a paged KV cache (CONTRACT). One call takes a batch of prompts and draws
// `samples` responses from each: a prompt's prefill is computed once and its K samples share its
// cache blocks. The prompts are continuously batched (model/scheduler.h): a running set bounded by
// a token, a sequence and a KV-memory budget, which finished samples leave and waiting prompts join
// step by step. Sample k of prompt i draws its uniforms from Philox(seed_i, sequence k, step t)
// (kernels/sample.h), so a sample depends only on its prompt, seed, k and the options: not on the
// rest of the batch, the budgets, nor on how many samples were asked for.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/llama_model.h"

namespace sppo {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  double temperature = 1.0;  // 0 or greedy => argmax
  double top_p = 1.0;
  int64_t top_k = 0;         // 0 = off
  bool greedy = false;
  std::vector<int32_t> eos_ids;
  // Budgets of the continuous batching (model/scheduler.h); 0 = automatic.
  int64_t max_batch_tokens = 0;       // rows of one decode step: running samples + newcomers' prompt tokens
  int64_t max_running_sequences = 0;  // samples decoding at once
  int64_t max_cache_tokens = 0;       // KV-cache positions (all layers' K and V of that many tokens)
  bool drain_batch = false;           // static batching: admit only when the running set is empty
  // Host positions (all layers' K and V) preempted prompts may be swapped out to, which lets the
  // scheduler overcommit the pool by what finished prompts used against their worst case
  // (model/scheduler.h): -1 automatic, 0 none (a prompt joins only when its worst case fits the
  // pool; no preemption).
  int64_t max_swap_tokens = -1;
  // Decode-only steps padded to fixed bucket sizes (model/decode_buckets.h), which the CUDA
  // backend replays as graphs: -1 automatic (on where the backend captures steps: CUDA), 0 off,
  // 1 on (tests on the CPU). Results are the same bits either way on the CPU.
  int decode_buckets = -1;
};

// What the scheduler did in one call (benchmarks and tests).
struct GenerateStats {
  int64_t steps = 0;                  // decode calls
  int64_t mixed_steps = 0;            // steps that prefilled newcomers and decoded others in one call
  int64_t prefill_tokens = 0;         // prompt rows prefilled
  int64_t decode_tokens = 0;          // one-token decode rows
  int64_t bucketed_steps = 0;         // decode-only steps run at a bucket size (model/decode_buckets.h)
  int64_t padding_rows = 0;           // their padding rows, summed
  int64_t peak_step_tokens = 0;       // most rows in one decode call
  int64_t peak_running = 0;           // most samples running at once
  int64_t joins_while_running = 0;    // prompts admitted while samples of earlier prompts still ran
  int64_t max_batch_tokens = 0, max_running_sequences = 0;  // the budgets used (automatic ones resolved)
  int64_t kv_blocks = 0, block_size = 0;                    // the KV pool (the memory budget)
  int64_t swap_blocks = 0;                                  // host swap space (0: worst-case reservation)
  int64_t peak_blocks_in_use = 0;
  int64_t preemptions = 0;            // prompts swapped out (each with its live samples)
  int64_t swap_ins = 0;               // prompts resumed from the host
  int64_t swapped_out_blocks = 0;     // blocks copied to the host, summed
  int64_t peak_swapped_blocks = 0;    // most blocks held on the host at once
  int64_t free_blocks_at_end = 0;     // kv_blocks when every block went back
};

struct Generation {
  std::vector<int32_t> tokens;   // generated tokens only (includes the EOS that stopped it)
  std::vector<float> logprobs;   // log-probability of each under the distribution sampled from
  bool stopped_at_eos = false;   // false: hit max_new_tokens
};

// Called at step boundaries with the number of generations finished so far, each time it grew: the
// counts rise strictly and the last call reports them all (prompts.size() * samples), before
// generate() returns. It runs on the generating thread, between steps, so it should only hand the
// count on (the addon queues it for JS); an exception it throws ends the call.
using GenerateProgress = std::function<void(int64_t finished)>;

// A prompt whose samples have all finished (sample k at samples[k]), as generate_each hands it over.
struct FinishedPrompt {
  int64_t prompt = 0;
  std::vector<Generation> samples;
};

// generate_each's report, at the step boundaries at which samples finished: `finished` is as
// GenerateProgress's count; `done` holds the prompts whose last sample finished in that step, in
// the order they finished (over the call, each prompt exactly once; the callee may move them out).
// It runs on the generating thread between steps; an exception it throws ends the call.
using GenerateReport = std::function<void(int64_t finished, std::vector<FinishedPrompt>& done)>;

// Throws sppo::Error naming the option when it is out of range.
void validate_generate_options(const GenerateOptions& o, int64_t vocab_size);

// Returns prompts.size() * samples generations, prompt-major (sample k of prompt i at i*samples+k).
// Throws sppo::Error naming the option (and the numbers) when a budget cannot hold one prompt.
// `stats` and `progress` may be null.
std::vector<Generation> generate(LlamaModel& model, const std::vector<std::vector<int32_t>>& prompts,
                                 int64_t samples, const std::vector<uint64_t>& seeds, const GenerateOptions& opts,
                                 GenerateStats* stats = nullptr, const GenerateProgress* progress = nullptr);

// generate()'s work, with each prompt handed to `report` as soon as its samples have finished
// instead of all of them returned at the end, so that a call over many prompts (a rollout stage
// spanning its shards) keeps the batch full to its end and holds no finished generation: the caller
// writes them as they come. The generations are the same bits as generate()'s. `stats` may be null.
void generate_each(LlamaModel& model, const std::vector<std::vector<int32_t>>& prompts, int64_t samples,
                   const std::vector<uint64_t>& seeds, const GenerateOptions& opts, const GenerateReport& report,
                   GenerateStats* stats = nullptr);

}  // namespace sppo
