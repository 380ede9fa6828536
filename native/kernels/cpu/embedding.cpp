// CPU embedding lookup and its deterministic backward (kernels/embedding.h).
#include "kernels/embedding.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/par.h"

namespace sppo::cpu {

namespace {
void check_ids(const int32_t* ids, int64_t n, int64_t V, const char* op) {
  for (int64_t r = 0; r < n; ++r)
    SPPO_CHECK(ids[r] < V, op, ": ids[", r, "] = ", ids[r], " is outside the vocabulary [0, ", V, ")");
}
}  // namespace

template <typename T>
void embedding_forward(const T* table, int64_t V, int64_t H, const int32_t* ids, int64_t n, T* out) {
  check_ids(ids, n, V, "embedding_forward");
  parallel_for_cost(n, static_cast<double>(H), [&](int64_t r) {
    T* dst = out + r * H;
    if (ids[r] < 0) std::fill(dst, dst + H, T(0));
    else std::memcpy(dst, table + static_cast<int64_t>(ids[r]) * H, static_cast<size_t>(H) * sizeof(T));
  });
}

template <typename T>
void embedding_backward(const T* dout, const int32_t* ids, int64_t n, int64_t V, int64_t H, T* dtable) {
  check_ids(ids, n, V, "embedding_backward");
  // Column blocks in parallel; rows in order inside each block, so every sum has a fixed order.
  constexpr int64_t kCols = 64;
  parallel_for_cost((H + kCols - 1) / kCols, static_cast<double>(kCols) * n, [&](int64_t blk) {
    const int64_t j0 = blk * kCols, j1 = std::min(H, j0 + kCols);
    for (int64_t r = 0; r < n; ++r) {
      if (ids[r] < 0) continue;
      T* g = dtable + static_cast<int64_t>(ids[r]) * H;
      const T* d = dout + r * H;
      for (int64_t j = j0; j < j1; ++j) g[j] += d[j];
    }
  });
}

template void embedding_forward<float>(const float*, int64_t, int64_t, const int32_t*, int64_t, float*);
template void embedding_forward<double>(const double*, int64_t, int64_t, const int32_t*, int64_t, double*);
template void embedding_backward<float>(const float*, const int32_t*, int64_t, int64_t, int64_t, float*);
template void embedding_backward<double>(const double*, const int32_t*, int64_t, int64_t, int64_t, double*);

}  // namespace sppo::cpu
