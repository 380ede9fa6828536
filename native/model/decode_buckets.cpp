// DecodeBuckets (model/decode_buckets.h).
#include "model/decode_buckets.h"

#include <algorithm>

#include "core/error.h"
#include "model/kv_cache.h"
#include "model/llama_model.h"
#include "model/llama_plans.h"

namespace sppo {

std::vector<int64_t> decode_bucket_sizes(int64_t cap) {
  SPPO_CHECK(cap >= 1, "decode buckets: the cap must be >= 1, got ", cap);
  std::vector<int64_t> s;
  for (int64_t b = 1; b < cap; b *= 2) s.push_back(b);
  s.push_back(cap);
  return s;
}

int64_t decode_max_padding(int64_t cap) {
  const std::vector<int64_t> s = decode_bucket_sizes(cap);
  int64_t most = 1;
  for (size_t i = 1; i < s.size(); ++i) most = std::max(most, s[i] - s[i - 1] - 1);
  return most;
}

std::size_t decode_buckets_bytes(const LlamaConfig& c, const Dtypes& dt, int64_t cap) {
  return llama_decode_bucket_plan(c, dt, cap).bytes();
}

DecodeBuckets::DecodeBuckets(const LlamaModel& model, const KVCache& cache, int64_t cap)
    : cfg_(&model.config()), dt_(model.dtypes()), cache_(&cache), sizes_(decode_bucket_sizes(cap)) {
  SPPO_CHECK(cache.padding_slots() >= decode_max_padding(cap), "decode buckets: the KV cache has ",
             cache.padding_slots(), " padding slots; buckets up to ", cap, " rows need ", decode_max_padding(cap));
  buf_ = Buffer(model.backend_ptr(), decode_buckets_bytes(*cfg_, dt_, cap));
  slots_.resize(sizes_.size());
}

size_t DecodeBuckets::bucket_for(int64_t rows) const {
  SPPO_CHECK(rows >= 1 && rows <= cap(), "decode buckets: ", rows, " rows is outside [1, ", cap(), "]");
  size_t i = 0;
  while (sizes_[i] < rows) ++i;
  return i;
}

std::vector<Tensor> DecodeBuckets::views(size_t i) const {
  const ArenaPlan plan = llama_decode_bucket_plan(*cfg_, dt_, sizes_.at(i));
  std::vector<Tensor> v;
  for (const auto& e : plan.entries()) v.push_back(buf_.view(e.dtype, e.numel, e.offset));
  return v;
}

}  // namespace sppo
