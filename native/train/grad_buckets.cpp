// plan_buckets and BucketTracker (train/grad_buckets.h).
#include "train/grad_buckets.h"

#include "core/error.h"

namespace sppo {

std::vector<GradBucket> plan_buckets(const ParamLayout& layout, int64_t bucket_elements) {
  SPPO_CHECK(bucket_elements > 0, "bucket size must be > 0 (got ", bucket_elements, ")");
  std::vector<GradBucket> out;
  GradBucket cur{0, 0};
  const auto& ps = layout.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    const int64_t end = i + 1 < ps.size() ? ps[i + 1].offset : layout.total();
    cur.end = end;
    if (cur.end - cur.begin >= bucket_elements) {
      out.push_back(cur);
      cur = GradBucket{end, end};
    }
  }
  if (cur.end > cur.begin) out.push_back(cur);
  return out;
}

std::vector<int> BucketTracker::ready(int64_t prefix) {
  std::vector<int> out;
  while (next_ < buckets_.size() && buckets_[next_].end <= prefix) out.push_back(static_cast<int>(next_++));
  return out;
}

}  // namespace sppo
