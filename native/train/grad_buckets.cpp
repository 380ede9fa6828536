// plan_buckets, bucket pieces and BucketTracker (train/grad_buckets.h).
#include "train/grad_buckets.h"

#include <algorithm>

#include "core/error.h"

namespace sppo {

std::vector<GradBucket> plan_buckets(const ParamLayout& layout, int64_t bucket_elements, int64_t granule) {
  SPPO_CHECK(bucket_elements > 0, "bucket size must be > 0 (got ", bucket_elements, ")");
  SPPO_CHECK(granule > 0, "bucket granule must be > 0 (got ", granule, ")");
  std::vector<GradBucket> out;
  const int64_t total = layout.total();
  GradBucket cur{0, 0};
  const auto& ps = layout.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    const int64_t boundary = i + 1 < ps.size() ? ps[i + 1].offset : total;
    const int64_t end = std::min(total, (boundary + granule - 1) / granule * granule);
    if (end <= cur.end) continue;  // rounded past this boundary already
    cur.end = end;
    if (cur.end - cur.begin >= bucket_elements || cur.end == total) {
      out.push_back(cur);
      cur = GradBucket{end, end};
    }
  }
  if (cur.end > cur.begin) out.push_back(cur);
  return out;
}

int64_t bucket_granule(int world) { return world > 1 ? int64_t{64} * world : 1; }

BucketPiece bucket_piece(const GradBucket& b, int rank, int world, int64_t total) {
  BucketPiece p;
  p.per_rank = (b.end - b.begin + world - 1) / world;
  p.padded_end = b.begin + p.per_rank * world;
  p.begin = std::min(total, b.begin + p.per_rank * rank);
  p.end = std::min(total, std::min(b.end, p.begin + p.per_rank));
  if (p.end < p.begin) p.end = p.begin;
  return p;
}

std::vector<int> BucketTracker::ready(int64_t prefix) {
  std::vector<int> out;
  while (next_ < buckets_.size() && buckets_[next_].end <= prefix) out.push_back(static_cast<int>(next_++));
  return out;
}

}  // namespace sppo
