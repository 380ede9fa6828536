// The gradient arena cut into buckets for the all-reduce (CONTRACT). Buckets are contiguous
// ranges of the arena, at least bucket_elements long except the last, cut at parameter
// boundaries (a parameter larger than a bucket is a bucket of its own). Because the arena is laid
// out in the order backward finishes gradients (model/param_layout.h), "final so far" is a prefix,
// and a bucket is ready once the prefix covers it: the last layers' buckets go first, while
// backward continues on earlier layers.
#pragma once
#include <cstdint>
#include <vector>

#include "model/param_layout.h"

namespace sppo {

struct GradBucket {
  int64_t begin = 0, end = 0;  // elements
};

std::vector<GradBucket> plan_buckets(const ParamLayout& layout, int64_t bucket_elements);

// Tracks which buckets have been reduced during one backward pass.
class BucketTracker {
 public:
  explicit BucketTracker(std::vector<GradBucket> buckets) : buckets_(std::move(buckets)) {}
  const std::vector<GradBucket>& buckets() const { return buckets_; }
  void reset() { next_ = 0; }
  // Buckets wholly inside [0, prefix) not handed out yet, in order; marks them handed out.
  std::vector<int> ready(int64_t prefix);
  bool done() const { return next_ == buckets_.size(); }

 private:
  std::vector<GradBucket> buckets_;
  size_t next_ = 0;
};

}  // namespace sppo
