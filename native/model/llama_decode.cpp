// LlamaModel::decode: new rows of several sequences at once (ragged, no padding), each attending
// to its own sequence's paged cache. The arithmetic per row equals the full forward's (the same
// ops; attention_decode matches attention_forward), so cached decoding reproduces it bit for bit.
// LlamaModel::decode_bucketed: a decode-only step padded to a bucket (model/decode_buckets.h),
// the same ops queued by the same function, run through the backend's run_step (CUDA graphs).
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/decode_buckets.h"
#include "model/kv_cache.h"
#include "model/llama_impl.h"
#include "model/llama_plans.h"

namespace sppo {

namespace {

// The host inputs of a step over R rows in n_items items.
struct StepInputs {
  std::vector<int32_t> ids, pos, seq, len, slots, last;
};

void upload_inputs(Backend& b, const StepInputs& in, const std::vector<Tensor>& v) {
  const std::vector<int32_t>* src[] = {&in.ids, &in.pos, &in.seq, &in.len, &in.slots, &in.last};
  for (int i = 0; i < 6; ++i) b.upload(v[static_cast<size_t>(i)].data, src[i]->data(), v[static_cast<size_t>(i)].bytes());
}

}  // namespace

// The step's ops, in llama_decode_plan's view order: from the uploaded inputs to the logits of
// each item's last row. Nothing here touches the host but the cancel check (eager steps only).
static void queue_decode(LlamaModel::Impl& m, const KVCache& cache, const std::vector<Tensor>& v, int64_t R,
                         int64_t n_items, const Tensor& last_logits, bool check_cancel) {
  const LlamaConfig& c = m.cfg;
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t nh = c.num_heads, nkv = c.num_kv_heads, hd = c.head_dim, half = hd / 2;
  const int64_t qw = nh * hd, kw = nkv * hd;
  const Tensor d_ids = v[0], d_pos = v[1], d_seq = v[2], d_len = v[3], d_slots = v[4], d_last = v[5];
  const Tensor cs = v[6], sn = v[7], x = v[8], xn = v[9], rstd = v[10], q = v[11], k = v[12], vv = v[13],
               att = v[14], gate = v[15], up = v[16], xl = v[17], hl = v[18], rl = v[19];
  Backend& b = *m.be;
  b.embedding_forward(m.W(m.layout.embedding()), V, H, d_ids, R, x);
  b.rope_tables(m.inv_freq.view(DType::F32, half), half, d_pos, R, cs, sn);
  const PagedShape ps{R, nh, nkv, hd, cache.block_size(), cache.pool_blocks(), cache.table_stride(),
                      1.0 / std::sqrt(static_cast<double>(hd))};
  const int64_t pool_rows = cache.pool_blocks() * cache.block_size();
  for (int64_t l = 0; l < c.num_layers; ++l) {
    if (check_cancel) m.cancel.check();
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

static void check_items(const LlamaConfig& c, const KVCache& cache, const std::vector<DecodeItem>& items) {
  SPPO_CHECK(!c.sequence_classification, "generate: a sequence-classification model cannot generate");
  for (const auto& it : items) {
    SPPO_CHECK(cache.is_open(it.seq), "decode: sequence ", it.seq, " is not open in the KV cache");
    SPPO_CHECK(it.count >= 1, "decode: sequence ", it.seq, " has no new tokens");
    for (int64_t j = 0; j < it.count; ++j)
      SPPO_CHECK(it.tokens[j] >= 0 && it.tokens[j] < c.vocab_size, "decode: token ", it.tokens[j],
                 " is outside the vocabulary [0, ", c.vocab_size, ")");
  }
}

// Appends each item's tokens to its sequence and fills the first rows of `in` (rows, in order).
static int64_t append_items(KVCache& cache, const std::vector<DecodeItem>& items, StepInputs& in) {
  int64_t r = 0;
  for (const auto& it : items) {
    const int64_t start = cache.length(it.seq);
    const std::vector<int32_t> s = cache.append(it.seq, it.count);
    in.slots.insert(in.slots.end(), s.begin(), s.end());
    for (int64_t j = 0; j < it.count; ++j, ++r) {
      in.ids.push_back(it.tokens[j]);
      in.pos.push_back(static_cast<int32_t>(start + j));
      in.seq.push_back(it.seq);
      in.len.push_back(static_cast<int32_t>(start + j + 1));
    }
    in.last.push_back(static_cast<int32_t>(r - 1));
  }
  return r;
}

void LlamaModel::decode(KVCache& cache, const std::vector<DecodeItem>& items, const Tensor& last_logits) {
  Impl& m = *impl_;
  const int64_t n_items = static_cast<int64_t>(items.size());
  check_items(m.cfg, cache, items);
  require(last_logits, m.dt.act, n_items * m.cfg.vocab_size, "decode", "last_logits");
  if (n_items == 0) return;
  StepInputs in;
  const int64_t R = append_items(cache, items, in);
  cache.sync_tables();
  const auto v = m.decode_ws.take(llama_decode_plan(m.cfg, m.dt, R, n_items));
  upload_inputs(*m.be, in, v);
  queue_decode(m, cache, v, R, n_items, last_logits, true);
}

Tensor LlamaModel::decode_bucketed(KVCache& cache, const std::vector<DecodeItem>& items, DecodeBuckets& buckets) {
  Impl& m = *impl_;
  SPPO_CHECK(&buckets.cache() == &cache, "decode_bucketed: the buckets belong to another KV cache");
  check_items(m.cfg, cache, items);
  const int64_t R = static_cast<int64_t>(items.size());
  for (const auto& it : items)
    SPPO_CHECK(it.count == 1, "decode_bucketed: sequence ", it.seq, " has ", it.count,
               " new tokens; bucketed steps decode one token per sequence");
  const size_t bi = buckets.bucket_for(R);
  const int64_t Bk = buckets.sizes()[bi];
  StepInputs in;
  append_items(cache, items, in);
  // Padding rows: a valid token at position 0, each written to its own scratch slot; all attend
  // to the first padding slot alone (written in this step, by the same kv_write before attention).
  for (int64_t r = R; r < Bk; ++r) {
    in.ids.push_back(0);
    in.pos.push_back(0);
    in.seq.push_back(cache.scratch_row());
    in.len.push_back(1);
    in.slots.push_back(cache.scratch_slot(r - R));
    in.last.push_back(static_cast<int32_t>(r));
  }
  cache.sync_tables();
  const std::vector<Tensor> v = buckets.views(bi);
  const Tensor logits = v.back();
  upload_inputs(*m.be, in, v);
  // The cancel point is the caller's, once per step (the replayed graph has no host in it).
  m.be->run_step(buckets.slot(bi), [&]() { queue_decode(m, cache, v, Bk, Bk, logits, false); }, logits,
                 "decode step");
  return logits;
}

}  // namespace sppo
