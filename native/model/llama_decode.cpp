// LlamaModel::decode: new rows of several sequences at once (ragged, no padding), each attending
// to its own sequence's paged cache. The arithmetic per row equals the full forward's (the same
// ops; attention_decode matches attention_forward), so cached decoding reproduces it bit for bit.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/kv_cache.h"
#include "model/llama_impl.h"
#include "model/llama_plans.h"

namespace sppo {

void LlamaModel::decode(KVCache& cache, const std::vector<DecodeItem>& items, const Tensor& last_logits) {
  Impl& m = *impl_;
  const LlamaConfig& c = m.cfg;
  SPPO_CHECK(!c.sequence_classification, "generate: a sequence-classification model cannot generate");
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t nh = c.num_heads, nkv = c.num_kv_heads, hd = c.head_dim, half = hd / 2;
  const int64_t qw = nh * hd, kw = nkv * hd, n_items = static_cast<int64_t>(items.size());
  require(last_logits, m.dt.act, n_items * V, "decode", "last_logits");
  int64_t R = 0;
  for (const auto& it : items) {
    SPPO_CHECK(cache.is_open(it.seq), "decode: sequence ", it.seq, " is not open in the KV cache");
    SPPO_CHECK(it.count >= 1, "decode: sequence ", it.seq, " has no new tokens");
    for (int64_t j = 0; j < it.count; ++j)
      SPPO_CHECK(it.tokens[j] >= 0 && it.tokens[j] < V, "decode: token ", it.tokens[j],
                 " is outside the vocabulary [0, ", V, ")");
    R += it.count;
  }
  if (R == 0) return;
  std::vector<int32_t> ids(R), pos(R), seq(R), len(R), slots, last(n_items);
  {
    int64_t r = 0, i = 0;
    for (const auto& it : items) {
      const int64_t start = cache.length(it.seq);
      const std::vector<int32_t> s = cache.append(it.seq, it.count);
      slots.insert(slots.end(), s.begin(), s.end());
      for (int64_t j = 0; j < it.count; ++j, ++r) {
        ids[r] = it.tokens[j];
        pos[r] = static_cast<int32_t>(start + j);
        seq[r] = it.seq;
        len[r] = static_cast<int32_t>(start + j + 1);
      }
      last[i++] = static_cast<int32_t>(r - 1);
    }
  }
  cache.sync_tables();
  const auto v = m.decode_ws.take(llama_decode_plan(c, m.dt, R, n_items));
  const Tensor d_ids = v[0], d_pos = v[1], d_seq = v[2], d_len = v[3], d_slots = v[4], d_last = v[5];
  const Tensor cs = v[6], sn = v[7], x = v[8], xn = v[9], rstd = v[10], q = v[11], k = v[12], vv = v[13],
               att = v[14], gate = v[15], up = v[16], xl = v[17], hl = v[18], rl = v[19];
  Backend& b = *m.be;
  b.upload(d_ids.data, ids.data(), d_ids.bytes());
  b.upload(d_pos.data, pos.data(), d_pos.bytes());
  b.upload(d_seq.data, seq.data(), d_seq.bytes());
  b.upload(d_len.data, len.data(), d_len.bytes());
  b.upload(d_slots.data, slots.data(), d_slots.bytes());
  b.upload(d_last.data, last.data(), d_last.bytes());
  b.embedding_forward(m.W(m.layout.embedding()), V, H, d_ids, R, x);
  b.rope_tables(m.inv_freq.view(DType::F32, half), half, d_pos, R, cs, sn);
  const PagedShape ps{R, nh, nkv, hd, cache.block_size(), cache.num_blocks(), cache.table_stride(),
                      1.0 / std::sqrt(static_cast<double>(hd))};
  const int64_t pool_rows = cache.num_blocks() * cache.block_size();
  for (int64_t l = 0; l < c.num_layers; ++l) {
    m.cancel.check();
    const auto& L = m.layout.layer(l);
    b.rmsnorm_forward(x, m.W(L.ln1), R, H, c.rms_norm_eps, xn, rstd);
    b.matmul(xn, m.W(L.q), q, R, qw, H, false, true, false);
    b.matmul(xn, m.W(L.k), k, R, kw, H, false, true, false);
    b.matmul(xn, m.W(L.v), vv, R, kw, H, false, true, false);
    b.rope_apply(q, R, nh, hd, cs, sn, false);
    b.rope_apply(k, R, nkv, hd, cs, sn, false);
    b.kv_write(k, vv, d_slots, R, kw, pool_rows, cache.k_pool(l), cache.v_pool(l));
    b.attention_decode(ps, q, cache.k_pool(l), cache.v_pool(l), cache.tables(), d_seq, d_len, att);
    b.matmul(att, m.W(L.o), x, R, H, qw, false, true, true);
    b.rmsnorm_forward(x, m.W(L.ln2), R, H, c.rms_norm_eps, xn, rstd);
    b.matmul(xn, m.W(L.gate), gate, R, I, H, false, true, false);
    b.matmul(xn, m.W(L.up), up, R, I, H, false, true, false);
    b.swiglu_forward(gate, up, R * I, gate);
    b.matmul(gate, m.W(L.down), x, R, H, I, false, true, true);
  }
  b.gather_rows(x, R, d_last, n_items, H, xl);
  b.rmsnorm_forward(xl, m.W(m.layout.final_norm()), n_items, H, c.rms_norm_eps, hl, rl);
  b.matmul(hl, m.W(m.layout.head()), last_logits, n_items, V, H, false, true, false);
}

}  // namespace sppo
