// DeBERTa's relative positions (CONTRACT): which row of the relative embeddings a query at i and a
// key at j of one sequence use, as a function of r = i - j only.
//   bucket(r) = r                                             when buckets <= 0 or |r| <= buckets/2
//             = sign(r) (m + ceil(ln(|r| / m) / ln((max_position - 1) / m) (m - 1)))   otherwise, m = buckets/2
//   row(r)    = clamp(bucket(r) + span, 0, 2 span - 1)       (span: relative_span(config))
// PairRM (256 buckets, max_position 512): exact up to |r| = 128, logarithmic to |r| = 511, then
// the last row. bucket(-r) = -bucket(r), which is why the position-to-content term can use the
// same row as the content-to-position one. Computed in double: for every |r| < 65000 that gives
// the same ceilings as transformers' float32 arithmetic.
#pragma once
#include <cstdint>
#include <vector>

#include "model/pairrm_config.h"

namespace sppo {

int64_t relative_bucket(int64_t r, int64_t buckets, int64_t max_position);

// The rows for offsets -(max_len - 1) .. max_len - 1, in that order (the disentangled_attention
// op's rel_index before it is shifted to the rows actually projected).
std::vector<int32_t> relative_rows(const PairRmConfig& c, int64_t max_len);

}  // namespace sppo
