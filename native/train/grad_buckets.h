// The gradient arena cut into buckets for the all-reduce (CONTRACT). Buckets are contiguous
// ranges of the arena, at least bucket_elements long except the last, cut at parameter
// boundaries rounded up to a multiple of `granule` elements (a parameter larger than a bucket is
// a bucket of its own). Because the arena is laid out in the order backward finishes gradients
// (model/param_layout.h), "final so far" is a prefix, and a bucket is ready once the prefix covers
// it: the last layers' buckets go first, while backward continues on earlier layers.
//
// Under data parallelism (world size W > 1) the granule is W * 64, so that every bucket but the
// last splits into W equal, 64-element-aligned pieces: piece r of each bucket is rank r's (its
// ZeRO-1 shard, and its share of the gradient norm); see bucket_pieces().
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/param_layout.h"

namespace sppo {

struct GradBucket {
  int64_t begin = 0, end = 0;  // elements
};

std::vector<GradBucket> plan_buckets(const ParamLayout& layout, int64_t bucket_elements, int64_t granule = 1);

// The bucket granule for a world of `world` ranks: 1 alone, world * 64 otherwise.
int64_t bucket_granule(int world);

// Rank r's piece of bucket b in a world of W: [begin + r * c, begin + (r + 1) * c) with
// c = ceil((end - begin) / W), clipped to [0, total). `padded_end` = begin + W * c is where the
// bucket's padded form ends (reduce_scatter and all_gather move W * c elements).
struct BucketPiece {
  int64_t begin = 0, end = 0, per_rank = 0, padded_end = 0;
};
BucketPiece bucket_piece(const GradBucket& b, int rank, int world, int64_t total);

// A range of the arena whose optimizer state this rank keeps: elements [begin, end) of the
// weights, at element `state_offset` of each optimizer slot.
struct OwnedRange {
  int64_t begin = 0, end = 0, state_offset = 0;
};

// What a trainer of rank `rank` in a world of `world` holds (the Trainer allocates from it and the
// static planner, train/memory_plan.h, sizes from it): the buckets of bucket_bytes of gradients
// of `grad_size` bytes each, the gradient arena's length (padded so that the last bucket's W
// pieces lie inside it), this rank's share of the norm, and its optimizer ranges (all of the arena
// unless `zero1` shards them over more than one rank).
struct StateLayout {
  std::vector<GradBucket> buckets;
  std::vector<OwnedRange> norm_ranges, owned;
  int64_t padded_total = 0, state_len = 0;
  bool sharded = false;
};
StateLayout plan_state_layout(const ParamLayout& layout, std::size_t grad_size, int64_t bucket_bytes, int world,
                              int rank, bool zero1);

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
