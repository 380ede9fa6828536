// Decode-only steps at fixed shapes (CONTRACT between the scheduler, LlamaModel::decode_bucketed
// and the backend's captured steps, backend.h run_step). A step in which every running sample
// decodes one token runs at a bucket size instead of its row count R: the smallest of 1, 2, 4,
// 8, ... (powers of two below the call's cap, then the cap itself: the most decode rows a step of
// the call can have, so padding never exceeds the call's budgets) that holds R. The R real rows
// come first; rows R..bucket-1 are padding: token 0, position 0, each writing its K/V to its own
// scratch slot of the cache (kv_cache.h, made with decode_max_padding(cap) padding slots) and
// attending to a length of 1 through its scratch row, so they read and write no real sequence's
// blocks, and their logits are ignored. Every row
// of a decode step is computed from its own sequence alone, so on the CPU the real rows' logits
// are bitwise those of the unpadded step (tests/test_model_decode_buckets.cpp). On CUDA the
// matrix products are cuBLASLt's, whose heuristic may pick another algorithm (another split of
// the inner dimension) for another row count, so a row may differ in its last bits between
// bucket sizes; one bucket's graph replays and eager launches stay bitwise equal.
//
// What a fixed shape buys: every input and workspace of a bucket sits at an address fixed for the
// call (one buffer of the largest bucket's plan, llama_plans.h llama_decode_bucket_plan, which
// each bucket lays its views over: buckets run one at a time on the backend's stream), the host
// inputs (ids, positions, slots, table rows, lengths, the block tables) are uploaded before the
// step, and the step's launches depend only on the bucket and the cache's capacity (attention's
// split count follows the tables' stride, not the lengths). So the backend may record the step
// once per bucket and replay it (CUDA graphs); its cancel point is checked per step, not per
// layer. Mixed steps (prefill rows) stay eager: LlamaModel::decode.
//
// A DecodeBuckets belongs to one KV cache (one generate() call): its graphs name the cache's
// pools, so decode_bucketed refuses any other cache.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/buffer.h"
#include "model/llama_config.h"
#include "model/precision.h"

namespace sppo {

class KVCache;
class LlamaModel;

// The bucket sizes for a call whose decode-only steps have at most `cap` rows.
std::vector<int64_t> decode_bucket_sizes(int64_t cap);
// The most padding rows a step can have: the largest gap between two bucket sizes, less one (at
// least 1: the padding slots the KV cache of a bucketed call is made with).
int64_t decode_max_padding(int64_t cap);
// The bytes a DecodeBuckets of that cap allocates (the static planner counts the same).
std::size_t decode_buckets_bytes(const LlamaConfig& c, const Dtypes& dt, int64_t cap);

class DecodeBuckets {
 public:
  DecodeBuckets(const LlamaModel& model, const KVCache& cache, int64_t cap);

  const std::vector<int64_t>& sizes() const { return sizes_; }
  int64_t cap() const { return sizes_.back(); }
  // Index of the smallest bucket holding `rows` (throws past the cap).
  size_t bucket_for(int64_t rows) const;
  const KVCache& cache() const { return *cache_; }
  // Bucket i's views (llama_decode_bucket_plan order) over the shared buffer.
  std::vector<Tensor> views(size_t i) const;
  std::unique_ptr<Backend::StepCapture>& slot(size_t i) { return slots_[i]; }

 private:
  const LlamaConfig* cfg_;
  Dtypes dt_;
  const KVCache* cache_;
  std::vector<int64_t> sizes_;
  Buffer buf_;
  std::vector<std::unique_ptr<Backend::StepCapture>> slots_;
};

}  // namespace sppo
