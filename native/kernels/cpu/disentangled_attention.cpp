// CPU disentangled attention (kernels/disentangled_attention.h). One task per (sequence, head):
// the head's q, k, v and the used rows of pos_q / pos_k are copied into contiguous blocks, the
// content and both relative terms are three small matrix products (cpu::matmul, run on the task's
// thread), the relative terms are gathered into the scores by bucket, then a row softmax and the
// value product. Only the bucket rows the sequence's offsets reach are projected.
#include "kernels/disentangled_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/matmul.h"

namespace sppo::cpu {

namespace {

void check_shape(const RelAttnShape& s, const int32_t* rel_index, const int32_t* start) {
  const char* op = "disentangled_attention";
  SPPO_CHECK(s.S >= 0 && s.N >= 0 && s.nh > 0 && s.hd > 0 && s.max_len >= 1 && s.P >= 0, op, ": bad shape (S ", s.S,
             ", N ", s.N, ", heads ", s.nh, ", head_dim ", s.hd, ", P ", s.P, ", max_len ", s.max_len, ")");
  SPPO_CHECK(start[0] == 0, op, ": start[0] must be 0 (got ", start[0], ")");
  for (int64_t i = 0; i < s.S; ++i) {
    const int64_t len = static_cast<int64_t>(start[i + 1]) - start[i];
    SPPO_CHECK(len >= 0 && len <= s.max_len, op, ": sequence ", i, " has length ", len, " (must be in [0, ", s.max_len,
               "])");
  }
  SPPO_CHECK(start[s.S] == s.N, op, ": start[S] = ", start[s.S], " but N = ", s.N);
  if (s.c2p || s.p2c)
    for (int64_t i = 0; i < 2 * s.max_len - 1; ++i)
      SPPO_CHECK(rel_index[i] >= 0 && rel_index[i] < s.P, op, ": rel_index[", i, "] = ", rel_index[i],
                 " is outside [0, ", s.P, ")");
}

template <typename T>
struct Scratch {
  std::vector<T> qh, kh, vh, pq, pk, sc, c2p, p2c, oh;
};
template <typename T>
Scratch<T>& scratch() {
  thread_local Scratch<T> s;
  return s;
}

// Columns [c0, c0 + w) of rows [r0, r0 + n) of a row-major [*, ld] array, contiguous in dst.
template <typename T>
void copy_block(const T* src, int64_t ld, int64_t r0, int64_t n, int64_t c0, int64_t w, T* dst) {
  for (int64_t r = 0; r < n; ++r)
    std::memcpy(dst + r * w, src + (r0 + r) * ld + c0, static_cast<size_t>(w) * sizeof(T));
}

template <typename T>
void head_task(const RelAttnShape& s, const T* q, const T* k, const T* v, const T* pos_q, const T* pos_k,
               const int32_t* rel_index, int64_t r0, int64_t L, int64_t h, T* out) {
  const int64_t hd = s.hd, ld = s.nh * s.hd, c0 = h * hd;
  const int32_t* idx = rel_index + (s.max_len - 1);  // idx[i - j], i - j in [-(L-1), L-1]
  const bool rel = s.c2p || s.p2c;
  int64_t lo = 0, M = 0;
  if (rel) {
    int64_t hi = -1;
    lo = s.P;
    for (int64_t d = -(L - 1); d <= L - 1; ++d) {
      lo = std::min<int64_t>(lo, idx[d]);
      hi = std::max<int64_t>(hi, idx[d]);
    }
    M = hi - lo + 1;
  }
  Scratch<T>& w = scratch<T>();
  auto need = [](std::vector<T>& b, int64_t n) {
    if (b.size() < static_cast<size_t>(n)) b.resize(static_cast<size_t>(n));
    return b.data();
  };
  T* qh = need(w.qh, L * hd);
  T* kh = need(w.kh, L * hd);
  T* vh = need(w.vh, L * hd);
  T* sc = need(w.sc, L * L);
  T* oh = need(w.oh, L * hd);
  copy_block(q, ld, r0, L, c0, hd, qh);
  copy_block(k, ld, r0, L, c0, hd, kh);
  copy_block(v, ld, r0, L, c0, hd, vh);
  matmul(qh, kh, sc, L, L, hd, false, true, false);
  T* c2p = nullptr;
  T* p2c = nullptr;
  if (s.c2p) {
    T* pk = need(w.pk, M * hd);
    copy_block(pos_k, ld, lo, M, c0, hd, pk);
    c2p = need(w.c2p, L * M);
    matmul(qh, pk, c2p, L, M, hd, false, true, false);
  }
  if (s.p2c) {
    T* pq = need(w.pq, M * hd);
    copy_block(pos_q, ld, lo, M, c0, hd, pq);
    p2c = need(w.p2c, L * M);
    matmul(kh, pq, p2c, L, M, hd, false, true, false);
  }
  const T scale = static_cast<T>(s.scale);
  for (int64_t i = 0; i < L; ++i) {
    T* row = sc + i * L;
    T mx = -INFINITY;
    for (int64_t j = 0; j < L; ++j) {
      T x = row[j];
      if (rel) {
        const int64_t d = idx[i - j] - lo;
        if (c2p) x += c2p[i * M + d];
        if (p2c) x += p2c[j * M + d];
      }
      x *= scale;
      row[j] = x;
      mx = std::max(mx, x);
    }
    T sum = 0;
    for (int64_t j = 0; j < L; ++j) {
      row[j] = std::exp(row[j] - mx);
      sum += row[j];
    }
    const T inv = T(1) / sum;
    for (int64_t j = 0; j < L; ++j) row[j] *= inv;
  }
  matmul(sc, vh, oh, L, hd, L, false, false, false);
  for (int64_t i = 0; i < L; ++i)
    std::memcpy(out + (r0 + i) * ld + c0, oh + i * hd, static_cast<size_t>(hd) * sizeof(T));
}

}  // namespace

template <typename T>
void disentangled_attention(const RelAttnShape& s, const T* q, const T* k, const T* v, const T* pos_q,
                            const T* pos_k, const int32_t* rel_index, const int32_t* start, T* out) {
  check_shape(s, rel_index, start);
  int64_t longest = 0;
  for (int64_t i = 0; i < s.S; ++i) longest = std::max<int64_t>(longest, start[i + 1] - start[i]);
  const double cost = static_cast<double>(longest) * static_cast<double>(longest + s.P) * 4.0 * s.hd;
  // Longest sequences first, so that one long task does not start last.
  std::vector<int64_t> order(static_cast<size_t>(s.S));
  for (int64_t i = 0; i < s.S; ++i) order[static_cast<size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return start[a + 1] - start[a] > start[b + 1] - start[b]; });
  auto task = [&](int64_t t) {
    const int64_t seq = order[static_cast<size_t>(t / s.nh)], h = t % s.nh;
    const int64_t L = start[seq + 1] - start[seq];
    if (L > 0) head_task(s, q, k, v, pos_q, pos_k, rel_index, start[seq], L, h, out);
  };
  const int64_t tasks = s.S * s.nh;
  if (static_cast<double>(tasks) * cost < (1 << 17)) {
    for (int64_t t = 0; t < tasks; ++t) task(t);
  } else {
    parallel_for_dynamic(tasks, task);
  }
}

template void disentangled_attention<float>(const RelAttnShape&, const float*, const float*, const float*,
                                            const float*, const float*, const int32_t*, const int32_t*, float*);
template void disentangled_attention<double>(const RelAttnShape&, const double*, const double*, const double*,
                                             const double*, const double*, const int32_t*, const int32_t*, double*);

}  // namespace sppo::cpu
