// DeBERTa's relative-position buckets (model/relative_position.h).
#include "model/relative_position.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace sppo {

int64_t relative_bucket(int64_t r, int64_t buckets, int64_t max_position) {
  const int64_t mid = buckets / 2, a = std::llabs(r);
  if (buckets <= 0 || a <= mid) return r;
  const double lg = std::log(static_cast<double>(a) / mid) / std::log(static_cast<double>(max_position - 1) / mid);
  const int64_t pos = mid + static_cast<int64_t>(std::ceil(lg * static_cast<double>(mid - 1)));
  return r < 0 ? -pos : pos;
}

std::vector<int32_t> relative_rows(const PairRmConfig& c, int64_t max_len) {
  const int64_t span = relative_span(c);
  std::vector<int32_t> rows(static_cast<size_t>(2 * max_len - 1));
  for (int64_t r = -(max_len - 1); r <= max_len - 1; ++r) {
    const int64_t b = relative_bucket(r, c.position_buckets, c.max_relative_positions);
    rows[static_cast<size_t>(r + max_len - 1)] = static_cast<int32_t>(std::clamp<int64_t>(b + span, 0, 2 * span - 1));
  }
  return rows;
}

}  // namespace sppo
