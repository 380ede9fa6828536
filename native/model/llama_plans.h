// The working-memory layouts of LlamaModel's calls (CONTRACT between the model, which takes its
// workspaces from these plans, and the static memory planner, train/memory_plan.h, which sizes a
// run from them without a model): one source of truth, so that the plan printed by --dry-run and
// the bytes the model allocates cannot drift apart (test_memory_plan checks them against a
// counting CPU backend). Each function returns the views in the order the model reads them back.
#pragma once
#include <cstdint>

#include "backend/buffer.h"
#include "model/llama_config.h"
#include "model/precision.h"

namespace sppo {

// Logits per chunk of the heads: about 16M, so the head's extra memory is bounded whatever the
// vocabulary.
constexpr int64_t kHeadChunkLogits = int64_t(1) << 24;
int64_t head_chunk_rows(const LlamaConfig& c, int64_t rows);

// The batch upload of N = B*T positions: ids, mask, positions, rope cos/sin.
ArenaPlan llama_batch_plan(const LlamaConfig& c, const Dtypes& dt, int64_t N);
// Activations of a forward over N rows. keep: what backward needs (every layer's, or with
// checkpointing each layer's input and one scratch set); otherwise two ping-pong buffers.
ArenaPlan llama_activation_plan(const LlamaConfig& c, const Dtypes& dt, int64_t N, bool keep, bool checkpointing);
// Temporaries of the backward over N rows.
ArenaPlan llama_backward_plan(const LlamaConfig& c, const Dtypes& dt, int64_t N);
// The log-prob head over n response rows of a batch of B sequences.
ArenaPlan llama_logprob_head_plan(const LlamaConfig& c, const Dtypes& dt, int64_t n, int64_t B);
// Full logits of N rows, one chunk at a time.
ArenaPlan llama_logits_plan(const LlamaConfig& c, const Dtypes& dt, int64_t N);
// A reward model's score head over B sequences.
ArenaPlan llama_score_head_plan(const LlamaConfig& c, const Dtypes& dt, int64_t B);
// A decode call of R new rows in `items` sequences.
ArenaPlan llama_decode_plan(const LlamaConfig& c, const Dtypes& dt, int64_t R, int64_t items);
// A bucketed decode-only step of `rows` rows (model/decode_buckets.h): the decode plan with one
// item per row, then the step's logits [rows, V] (act dtype). Every bucket of a call lays its
// views out over one buffer of the largest bucket's plan.
ArenaPlan llama_decode_bucket_plan(const LlamaConfig& c, const Dtypes& dt, int64_t rows);

}  // namespace sppo
