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

StateLayout plan_state_layout(const ParamLayout& layout, std::size_t grad_size, int64_t bucket_bytes, int world,
                              int rank, bool zero1) {
  StateLayout s;
  const int64_t elems = std::max<int64_t>(1, bucket_bytes / static_cast<int64_t>(grad_size));
  s.buckets = plan_buckets(layout, elems, bucket_granule(world));
  const int64_t total = layout.total();
  s.sharded = zero1 && world > 1;
  s.padded_total = total;
  if (world == 1) {
    s.norm_ranges.push_back(OwnedRange{0, total, 0});
  } else {
    for (const GradBucket& b : s.buckets) {
      const BucketPiece p = bucket_piece(b, rank, world, total);
      s.padded_total = std::max(s.padded_total, p.padded_end);
      if (p.end > p.begin) s.norm_ranges.push_back(OwnedRange{p.begin, p.end, 0});
    }
  }
  if (s.sharded) {
    for (OwnedRange r : s.norm_ranges) {
      r.state_offset = s.state_len;
      s.state_len += r.end - r.begin;
      s.owned.push_back(r);
    }
  } else {
    s.owned.push_back(OwnedRange{0, total, 0});
    s.state_len = total;
  }
  return s;
}

std::vector<int> BucketTracker::ready(int64_t prefix) {
  std::vector<int> out;
  while (next_ < buckets_.size() && buckets_[next_].end <= prefix) out.push_back(static_cast<int>(next_++));
  return out;
}

}  // namespace sppo
