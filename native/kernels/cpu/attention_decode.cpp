// CPU paged-cache attention (kernels/attention_decode.h): one task per (row, head), the same
// arithmetic as attention_forward's task (scores in key order, max, exp, sum, weighted values),
// reading keys block by block through the sequence's block table.
#include "kernels/attention_decode.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/simd.h"
#include "kernels/attention_math.h"
#include "kernels/cpu/attention_avx2.h"
#include "kernels/cpu/par.h"

namespace sppo::cpu {

template <typename T>
void kv_write(const T* k, const T* v, const int32_t* slots, int64_t R, int64_t kw, int64_t pool_rows, T* k_pool,
              T* v_pool) {
  for (int64_t r = 0; r < R; ++r)
    SPPO_CHECK(slots[r] >= 0 && slots[r] < pool_rows, "kv_write: slots[", r, "] = ", slots[r],
               " is outside the cache pool of ", pool_rows, " rows");
  parallel_for_cost(R, 2.0 * kw, [&](int64_t r) {
    const size_t bytes = static_cast<size_t>(kw) * sizeof(T);
    std::memcpy(k_pool + static_cast<int64_t>(slots[r]) * kw, k + r * kw, bytes);
    std::memcpy(v_pool + static_cast<int64_t>(slots[r]) * kw, v + r * kw, bytes);
  });
}

template <typename T>
void attention_decode(const PagedShape& s, const T* q, const T* k_pool, const T* v_pool, const int32_t* tables,
                      const int32_t* table_rows, const int32_t* lengths, T* out) {
  SPPO_CHECK(s.block_size > 0 && s.block_size % 8 == 0, "attention_decode: block_size must be a positive multiple of 8 (got ",
             s.block_size, ")");
  SPPO_CHECK(s.nkv > 0 && s.nh % s.nkv == 0, "attention_decode: nh (", s.nh, ") must be a multiple of nkv (", s.nkv, ")");
  const int64_t qw = s.nh * s.hd, kw = s.nkv * s.hd, group = s.nh / s.nkv, bs = s.block_size;
  // Every block a row reads must be in the pool (memory safety: tables come from the host).
  for (int64_t r = 0; r < s.R; ++r) {
    SPPO_CHECK(lengths[r] >= 1 && lengths[r] <= s.table_stride * bs, "attention_decode: lengths[", r, "] = ",
               lengths[r], " is outside [1, ", s.table_stride * bs, "]");
    SPPO_CHECK(table_rows[r] >= 0, "attention_decode: table_rows[", r, "] = ", table_rows[r], " is negative");
    const int32_t* tab = tables + static_cast<int64_t>(table_rows[r]) * s.table_stride;
    for (int64_t b = 0; b * bs < lengths[r]; ++b)
      SPPO_CHECK(tab[b] >= 0 && tab[b] < s.num_blocks, "attention_decode: block ", tab[b], " of row ", r,
                 " is outside the pool of ", s.num_blocks, " blocks");
  }
  const T scale = static_cast<T>(s.scale);
  int64_t longest = 1;
  for (int64_t r = 0; r < s.R; ++r) longest = std::max<int64_t>(longest, lengths[r]);
  parallel_for_cost(s.R * s.nh, 4.0 * s.hd * longest, [&](int64_t idx) {
    const int64_t r = idx / s.nh, h = idx % s.nh, g = h / group, n = lengths[r];
    const int32_t* tab = tables + static_cast<int64_t>(table_rows[r]) * s.table_stride;
    const T* qv = q + r * qw + h * s.hd;
    T* o = out + r * qw + h * s.hd;
    thread_local std::vector<T> sc;
    if (static_cast<int64_t>(sc.size()) < n) sc.resize(n);
    auto key = [&](int64_t j) { return k_pool + (static_cast<int64_t>(tab[j / bs]) * bs + j % bs) * kw + g * s.hd; };
    auto val = [&](int64_t j) { return v_pool + (static_cast<int64_t>(tab[j / bs]) * bs + j % bs) * kw + g * s.hd; };
#if SPPO_HAVE_AVX2_PATH
    if constexpr (std::is_same_v<T, float>) {
      if (s.hd % 8 == 0 && simd::use_avx2()) {
        for (int64_t j0 = 0; j0 < n; j0 += bs)
          attention_scores_avx2(qv, key(j0), std::min(bs, n - j0), s.hd, kw, scale, sc.data() + j0);
        float m = -INFINITY;
        for (int64_t j = 0; j < n; ++j) m = std::max(m, sc[j]);
        float sum = 0;
        for (int64_t j = 0; j < n; ++j) {
          sc[j] = attention_math::weight(sc[j], m);
          sum += sc[j];
        }
        const float inv = 1.f / sum;
        std::fill(o, o + s.hd, 0.f);
        for (int64_t j = 0; j < n; ++j) add_scaled_row_avx2(o, val(j), sc[j] * inv, s.hd);
        return;
      }
    }
#endif
    T m = -INFINITY;
    for (int64_t j = 0; j < n; ++j) {
      const T* kv = key(j);
      T d = 0;
      for (int64_t i = 0; i < s.hd; ++i) d += qv[i] * kv[i];
      sc[j] = attention_math::score(d, scale);
      m = std::max(m, sc[j]);
    }
    T sum = 0;
    for (int64_t j = 0; j < n; ++j) {
      sc[j] = attention_math::weight(sc[j], m);
      sum += sc[j];
    }
    const T inv = T(1) / sum;
    std::fill(o, o + s.hd, T(0));
    for (int64_t j = 0; j < n; ++j) {
      const T p = sc[j] * inv;
      const T* vv = val(j);
      for (int64_t i = 0; i < s.hd; ++i) o[i] += p * vv[i];
    }
  });
}

template void kv_write<float>(const float*, const float*, const int32_t*, int64_t, int64_t, int64_t, float*, float*);
template void kv_write<double>(const double*, const double*, const int32_t*, int64_t, int64_t, int64_t, double*,
                               double*);
template void kv_write<uint16_t>(const uint16_t*, const uint16_t*, const int32_t*, int64_t, int64_t, int64_t, uint16_t*,
                                 uint16_t*);
template void attention_decode<float>(const PagedShape&, const float*, const float*, const float*, const int32_t*,
                                      const int32_t*, const int32_t*, float*);
template void attention_decode<double>(const PagedShape&, const double*, const double*, const double*,
                                       const int32_t*, const int32_t*, const int32_t*, double*);

}  // namespace sppo::cpu
