// CPU row gathers, scatters and per-sequence sums (kernels/rows.h).
#include "kernels/rows.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/par.h"

namespace sppo::cpu {

namespace {
void check_index(const int32_t* idx, int64_t n, int64_t limit, const char* op, const char* what) {
  for (int64_t i = 0; i < n; ++i)
    SPPO_CHECK(idx[i] >= 0 && idx[i] < limit, op, ": ", what, "[", i, "] = ", idx[i], " is outside [0, ", limit, ")");
}
}  // namespace

template <typename T>
void gather_rows(const T* src, int64_t src_rows, const int32_t* idx, int64_t n, int64_t H, T* dst) {
  check_index(idx, n, src_rows, "gather_rows", "idx");
  parallel_for_cost(n, static_cast<double>(H), [&](int64_t i) {
    std::memcpy(dst + i * H, src + static_cast<int64_t>(idx[i]) * H, static_cast<size_t>(H) * sizeof(T));
  });
}

template <typename T>
void scatter_add_rows(const T* src, const int32_t* idx, int64_t n, int64_t H, int64_t dst_rows, T* dst) {
  check_index(idx, n, dst_rows, "scatter_add_rows", "idx");
  std::vector<uint8_t> seen(static_cast<size_t>(dst_rows), 0);
  for (int64_t i = 0; i < n; ++i) {
    SPPO_CHECK(!seen[idx[i]], "scatter_add_rows: idx[", i, "] = ", idx[i], " repeats (indices must be distinct)");
    seen[idx[i]] = 1;
  }
  parallel_for_cost(n, static_cast<double>(H), [&](int64_t i) {
    T* d = dst + static_cast<int64_t>(idx[i]) * H;
    const T* s = src + i * H;
    for (int64_t j = 0; j < H; ++j) d[j] += s[j];
  });
}

template <typename T>
void segment_sum(const T* x, const int32_t* seg, int64_t n, int64_t S, T* out) {
  check_index(seg, n, S, "segment_sum", "seg");
  std::vector<double> acc(static_cast<size_t>(S), 0.0);
  for (int64_t i = 0; i < n; ++i) acc[seg[i]] += static_cast<double>(x[i]);
  for (int64_t s = 0; s < S; ++s) out[s] = static_cast<T>(acc[s]);
}

template <typename T>
void expand_segments(const T* x, const int32_t* seg, int64_t n, int64_t S, double scale, T* out) {
  check_index(seg, n, S, "expand_segments", "seg");
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(static_cast<double>(x[seg[i]]) * scale);
}

#define SPPO_INSTANTIATE(T)                                                                        \
  template void gather_rows<T>(const T*, int64_t, const int32_t*, int64_t, int64_t, T*);           \
  template void scatter_add_rows<T>(const T*, const int32_t*, int64_t, int64_t, int64_t, T*);      \
  template void segment_sum<T>(const T*, const int32_t*, int64_t, int64_t, T*);                    \
  template void expand_segments<T>(const T*, const int32_t*, int64_t, int64_t, double, T*);
SPPO_INSTANTIATE(float)
SPPO_INSTANTIATE(double)
#undef SPPO_INSTANTIATE

}  // namespace sppo::cpu
