// LlamaEngine incremental decoding with a per-sequence KV cache. Rows of all sequences are
// processed together (ragged, no padding); each row attends to its own sequence's cache.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/simd.h"
#include "model/cpu/par.h"
#include "model/cpu/matmul.h"
#include "model/cpu/ops.h"
#include "model/engine_internal.h"
#include "model/rope.h"

namespace sppo {

using namespace cpu_model;

namespace {

#if SPPO_HAVE_AVX2_PATH
// attention_forward_task_avx2's arithmetic for one cached row (float, hd % 8 == 0), through the
// same shared pieces, so the cache reproduces the full forward bitwise.
void decode_attention_avx2(const float* qv, const float* base_k, const float* base_v, int64_t n, int64_t hd,
                           int64_t kw, float scale, float* o, float* sc) {
  attention_scores_avx2(qv, base_k, n, hd, kw, scale, sc);
  float m = -INFINITY;
  for (int64_t jj = 0; jj < n; ++jj) m = std::max(m, sc[jj]);
  float sum = 0;
  for (int64_t jj = 0; jj < n; ++jj) {
    sc[jj] = std::exp(sc[jj] - m);
    sum += sc[jj];
  }
  const float inv = 1.f / sum;
  for (int64_t i = 0; i < hd; ++i) o[i] = 0.f;
  for (int64_t jj = 0; jj < n; ++jj) add_scaled_row_avx2(o, base_v + jj * kw, sc[jj] * inv, hd);
}
#endif

// One query row and head against its sequence's n cached keys (stride kw), into o [hd].
template <typename T>
void decode_attention_task(const T* qv, const T* base_k, const T* base_v, int64_t n, int64_t hd, int64_t kw,
                           T scale, T* o) {
  thread_local std::vector<T> sc;  // scores; reused across tasks instead of one allocation each
  if (static_cast<int64_t>(sc.size()) < n) sc.resize(n);
#if SPPO_HAVE_AVX2_PATH
  if constexpr (std::is_same_v<T, float>) {
    if (hd % 8 == 0 && simd::use_avx2())
      return decode_attention_avx2(qv, base_k, base_v, n, hd, kw, scale, o, sc.data());
  }
#endif
  T m = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    const T* kv = base_k + j * kw;
    T d = 0;
    for (int64_t i = 0; i < hd; ++i) d += qv[i] * kv[i];
    sc[j] = d * scale;
    m = std::max(m, sc[j]);
  }
  T sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    sc[j] = std::exp(sc[j] - m);
    sum += sc[j];
  }
  const T inv = T(1) / sum;
  std::fill(o, o + hd, T(0));
  for (int64_t j = 0; j < n; ++j) {
    const T p = sc[j] * inv;
    const T* vv = base_v + j * kw;
    for (int64_t i = 0; i < hd; ++i) o[i] += p * vv[i];
  }
}

}  // namespace

template <typename T>
void LlamaEngine<T>::cache_init(KVCache<T>& cache, const std::vector<int64_t>& capacities) const {
  for (size_t i = 0; i < capacities.size(); ++i)
    SPPO_CHECK(capacities[i] > 0, "KV cache: capacity of sequence ", i, " must be >= 1");
  cache.cap = capacities;
  cache.len.assign(capacities.size(), 0);
  cache.k.assign(cfg_.num_layers, std::vector<std::vector<T>>(capacities.size()));
  cache.v.assign(cfg_.num_layers, std::vector<std::vector<T>>(capacities.size()));
}

template <typename T>
void LlamaEngine<T>::decode(KVCache<T>& cache, const std::vector<DecodeItem>& items, T* last_logits) {
  SPPO_CHECK(!cfg_.sequence_classification, "generate: a sequence-classification model cannot generate");
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, V = cfg_.vocab_size;
  const int64_t nh = cfg_.num_heads, nkv = cfg_.num_kv_heads, hd = cfg_.head_dim;
  const int64_t qw = nh * hd, kw = nkv * hd, group = nh / nkv, half = hd / 2;
  int64_t R = 0;
  for (const auto& it : items) {
    SPPO_CHECK(it.seq >= 0 && it.seq < static_cast<int64_t>(cache.len.size()), "decode: bad sequence ", it.seq);
    SPPO_CHECK(it.count >= 1, "decode: sequence ", it.seq, " has no new tokens");
    SPPO_CHECK(cache.len[it.seq] + it.count <= cache.cap[it.seq], "decode: KV cache of sequence ", it.seq,
               " is full (capacity ", cache.cap[it.seq], ")");
    R += it.count;
  }
  std::vector<int64_t> row_seq(R), row_pos(R), last_row;
  std::vector<T> x(R * H);
  {
    int64_t r = 0;
    const T* E = W(emb_);
    for (const auto& it : items) {
      for (int64_t j = 0; j < it.count; ++j, ++r) {
        const int32_t tok = it.tokens[j];
        SPPO_CHECK(tok >= 0 && tok < V, "decode: token ", tok, " is outside the vocabulary [0, ", V, ")");
        row_seq[r] = it.seq;
        row_pos[r] = cache.len[it.seq] + j;
        std::copy(E + tok * H, E + (tok + 1) * H, x.data() + r * H);
      }
      last_row.push_back(r - 1);
    }
  }
  std::vector<T> cs(R * half), sn(R * half);
  rope_tables<T>(inv_freq_, row_pos.data(), R, cs.data(), sn.data());
  std::vector<T> xn(R * H), rstd(R), q(R * qw), k(R * kw), v(R * kw), att(R * qw), gate(R * I), up(R * I);
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(hd)));
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    const LayerIdx& li = layers_[l];
    rmsnorm_forward(x.data(), W(li.ln1), R, H, cfg_.rms_norm_eps, xn.data(), rstd.data());
    matmul_nt(xn.data(), W(li.q), q.data(), R, qw, H, false);
    matmul_nt(xn.data(), W(li.k), k.data(), R, kw, H, false);
    matmul_nt(xn.data(), W(li.v), v.data(), R, kw, H, false);
    rope_apply(q.data(), R, nh, hd, cs.data(), sn.data(), false);
    rope_apply(k.data(), R, nkv, hd, cs.data(), sn.data(), false);
    auto& ck = cache.k[l];
    auto& cv = cache.v[l];
    for (const auto& it : items) {  // grow (amortised doubling) to hold the new rows
      const size_t need = static_cast<size_t>((cache.len[it.seq] + it.count) * kw);
      if (ck[it.seq].size() < need) {
        ck[it.seq].resize(need);
        cv[it.seq].resize(need);
      }
    }
    for (int64_t r = 0; r < R; ++r) {
      const int64_t at = row_pos[r] * kw;
      std::copy(k.data() + r * kw, k.data() + (r + 1) * kw, ck[row_seq[r]].data() + at);
      std::copy(v.data() + r * kw, v.data() + (r + 1) * kw, cv[row_seq[r]].data() + at);
    }
    // Same arithmetic, in the same order, as attention_forward over a padded batch.
    parallel_for_cost(R * nh, 4.0 * hd * (cache.len[row_seq[0]] + 8), [&](int64_t idx) {
      const int64_t r = idx / nh, h = idx % nh, g = h / group;
      decode_attention_task(q.data() + r * qw + h * hd, ck[row_seq[r]].data() + g * hd,
                            cv[row_seq[r]].data() + g * hd, row_pos[r] + 1, hd, kw, scale,
                            att.data() + r * qw + h * hd);
    });
    matmul_nt(att.data(), W(li.o), x.data(), R, H, qw, true);
    rmsnorm_forward(x.data(), W(li.ln2), R, H, cfg_.rms_norm_eps, xn.data(), rstd.data());
    matmul_nt(xn.data(), W(li.gate), gate.data(), R, I, H, false);
    matmul_nt(xn.data(), W(li.up), up.data(), R, I, H, false);
    swiglu_forward(gate.data(), up.data(), R * I, gate.data());
    matmul_nt(gate.data(), W(li.down), x.data(), R, H, I, true);
  }
  for (const auto& it : items) cache.len[it.seq] += it.count;
  const int64_t n = static_cast<int64_t>(items.size());
  std::vector<T> xl(n * H), hl(n * H), rl(n);
  for (int64_t i = 0; i < n; ++i) std::copy(x.data() + last_row[i] * H, x.data() + (last_row[i] + 1) * H, xl.data() + i * H);
  rmsnorm_forward(xl.data(), W(norm_), n, H, cfg_.rms_norm_eps, hl.data(), rl.data());
  matmul_nt(hl.data(), head_w(), last_logits, n, V, H, false);
}

#define SPPO_INSTANTIATE(T)                                                                      \
  template void LlamaEngine<T>::cache_init(KVCache<T>&, const std::vector<int64_t>&) const;      \
  template void LlamaEngine<T>::decode(KVCache<T>&, const std::vector<DecodeItem>&, T*);
SPPO_INSTANTIATE(float)
SPPO_INSTANTIATE(double)
#undef SPPO_INSTANTIATE

}  // namespace sppo
