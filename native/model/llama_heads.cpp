// LlamaModel heads: full logits, reward-model scores, and response-token log-probabilities,
// computed only at the rows that predict a response token, in chunks of about 16M logits so the
// extra memory is bounded whatever the vocabulary; and the training entry points over them.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/llama_impl.h"
#include "model/llama_plans.h"

namespace sppo {

HeadRows LlamaModel::Impl::response_rows(const TokenBatch& b) const {
  HeadRows r;
  for (int64_t bi = 0; bi < b.B; ++bi)
    for (int64_t t = 1; t < b.T; ++t)
      if (b.response_mask[bi * b.T + t]) {
        r.row.push_back(static_cast<int32_t>(bi * b.T + t - 1));  // the logits at t-1 predict token t
        r.seq.push_back(static_cast<int32_t>(bi));
        r.label.push_back(b.tokens[bi * b.T + t]);
        r.pos.push_back(static_cast<int32_t>(t));
      }
  return r;
}

std::vector<int32_t> LlamaModel::Impl::last_rows(const TokenBatch& b) const {
  std::vector<int32_t> rows(static_cast<size_t>(b.B));
  for (int64_t bi = 0; bi < b.B; ++bi) {
    int64_t t = b.T - 1;
    while (t >= 0 && !b.attention_mask[bi * b.T + t]) --t;
    SPPO_CHECK(t >= 0, "scores: row ", bi, " has no real token (attention_mask is all 0)");
    rows[static_cast<size_t>(bi)] = static_cast<int32_t>(bi * b.T + t);
  }
  return rows;
}

// Plans the log-prob head's buffers for rows.n() rows and uploads the row indices.
static void plan_logprob_head(LlamaModel::Impl& m) {
  const int64_t n = m.rows.n();
  m.chunk = head_chunk_rows(m.cfg, n);
  const auto v = m.head_ws.take(llama_logprob_head_plan(m.cfg, m.dt, n, m.B));
  m.rows.d_row = v[0];
  m.rows.d_seq = v[1];
  m.rows.d_label = v[2];
  m.tok_lp = v[3];
  m.lse = v[4];
  m.g_rows = v[5];
  m.seq_out = v[6];
  m.head_h = v[7];
  m.head_logits = v[8];
  m.head_dh = v[9];
  m.be->upload(m.rows.d_row.data, m.rows.row.data(), m.rows.d_row.bytes());
  m.be->upload(m.rows.d_seq.data, m.rows.seq.data(), m.rows.d_seq.bytes());
  m.be->upload(m.rows.d_label.data, m.rows.label.data(), m.rows.d_label.bytes());
}

void LlamaModel::Impl::logprob_head_forward(bool keep) {
  plan_logprob_head(*this);
  const int64_t n = rows.n(), H = cfg.hidden_size, V = cfg.vocab_size;
  const Tensor Wh = W(layout.head());
  for (int64_t c0 = 0; c0 < n; c0 += chunk) {
    cancel.check();
    const int64_t m = std::min(chunk, n - c0);
    be->gather_rows(hidden, N, rows.d_row.slice(c0, m), m, H, head_h);
    be->matmul(head_h, Wh, head_logits, m, V, H, false, true, false);
    be->logprob_forward(head_logits, m, V, rows.d_label.slice(c0, m), tok_lp.slice(c0, m), lse.slice(c0, m));
  }
  head_cached = keep && chunk >= n;
  be->segment_sum(tok_lp, rows.d_seq, n, B, seq_out);
}

void LlamaModel::Impl::logprob_head_backward(const Tensor& grad_seq, const Tensor& d_hidden, const Tensor& grads) {
  const int64_t n = rows.n(), H = cfg.hidden_size, V = cfg.vocab_size;
  const Tensor Wh = W(layout.head());
  const Tensor dWh = G(grads, layout[layout.head()]);
  be->expand_segments(grad_seq, rows.d_seq, n, B, 1.0, g_rows);
  for (int64_t c0 = 0; c0 < n; c0 += chunk) {
    cancel.check();
    const int64_t m = std::min(chunk, n - c0);
    if (!head_cached) {
      be->gather_rows(hidden, N, rows.d_row.slice(c0, m), m, H, head_h);
      be->matmul(head_h, Wh, head_logits, m, V, H, false, true, false);
    }
    // d logits in place over the logits: no second [rows, V] buffer.
    be->logprob_backward(head_logits, m, V, rows.d_label.slice(c0, m), g_rows.slice(c0, m), lse.slice(c0, m),
                         head_logits);
    be->matmul(head_logits, Wh, head_dh, m, H, V, false, false, false);
    be->matmul(head_logits, head_h, dWh, V, H, m, true, false, true);
    be->scatter_add_rows(head_dh, rows.d_row.slice(c0, m), m, H, N, d_hidden);
  }
  head_cached = false;
}

void LlamaModel::logits(const TokenBatch& b, const Tensor& out) {
  Impl& m = *impl_;
  SPPO_CHECK(!m.cfg.sequence_classification, "logits: this is a sequence-classification model (use scores)");
  check_batch(b, "logits", false);
  const int64_t V = m.cfg.vocab_size, H = m.cfg.hidden_size;
  require(out, out.dtype, b.B * b.T * V, "logits", "output");
  m.prepare_batch(b);
  m.forward(false);
  const int64_t chunk = head_chunk_rows(m.cfg, m.N);
  const Tensor lg = m.head_ws.take(llama_logits_plan(m.cfg, m.dt, m.N))[0];
  for (int64_t r0 = 0; r0 < m.N; r0 += chunk) {
    const int64_t rows = std::min(chunk, m.N - r0);
    m.be->matmul(m.hidden.slice(r0 * H, rows * H), m.W(m.layout.head()), lg, rows, V, H, false, true, false);
    m.download_as(lg, out.slice(r0 * V, rows * V), rows * V);
  }
  m.be->synchronize();  // the call's boundary: a device backend's deferred errors are thrown here
}

// Gathers the last real row of each sequence and applies the score head: [B, num_labels].
static Tensor score_head(LlamaModel::Impl& m, const TokenBatch& b) {
  const int64_t H = m.cfg.hidden_size, nl = m.cfg.num_labels;
  m.score_rows_h = m.last_rows(b);
  const auto v = m.head_ws.take(llama_score_head_plan(m.cfg, m.dt, b.B));
  m.score_rows = v[0];
  m.head_h = v[1];
  m.scores_out = v[2];
  m.head_dh = v[3];
  m.be->upload(m.score_rows.data, m.score_rows_h.data(), m.score_rows.bytes());
  m.be->gather_rows(m.hidden, m.N, m.score_rows, b.B, H, m.head_h);
  m.be->matmul(m.head_h, m.W(m.layout.head()), m.scores_out, b.B, nl, H, false, true, false);
  return m.scores_out;
}

void LlamaModel::scores(const TokenBatch& b, const Tensor& out) {
  Impl& m = *impl_;
  SPPO_CHECK(m.cfg.sequence_classification, "scores: this is a causal LM without a score head (use logits)");
  check_batch(b, "scores", false);
  require(out, out.dtype, b.B * m.cfg.num_labels, "scores", "output");
  m.last_rows(b);  // refuse an all-padding row before any work
  m.prepare_batch(b);
  m.forward(false);
  m.download_as(score_head(m, b), out, b.B * m.cfg.num_labels);
  m.be->synchronize();
}

void LlamaModel::sequence_logprobs(const TokenBatch& b, const Tensor& seq_out, const Tensor& token_out) {
  Impl& m = *impl_;
  SPPO_CHECK(!m.cfg.sequence_classification, "sequence_logprobs: this is a sequence-classification model");
  check_batch(b, "sequence_logprobs", true);
  require(seq_out, seq_out.dtype, b.B, "sequence_logprobs", "output");
  m.prepare_batch(b);
  m.forward(false);
  m.rows = m.response_rows(b);
  m.logprob_head_forward(false);
  m.download_as(m.seq_out, seq_out, b.B);
  if (!token_out.empty()) {
    require(token_out, token_out.dtype, b.B * b.T, "sequence_logprobs", "token output");
    const int64_t n = m.rows.n();
    std::vector<double> tok(static_cast<size_t>(n));
    m.download_as(m.tok_lp, Tensor(tok.data(), DType::F64, n), n);
    for (int64_t i = 0; i < b.B * b.T; ++i) {
      if (token_out.dtype == DType::F32) token_out.as<float>()[i] = 0;
      else token_out.as<double>()[i] = 0;
    }
    for (int64_t i = 0; i < n; ++i) {
      const int64_t at = static_cast<int64_t>(m.rows.seq[i]) * b.T + m.rows.pos[i];
      if (token_out.dtype == DType::F32) token_out.as<float>()[at] = static_cast<float>(tok[i]);
      else token_out.as<double>()[at] = tok[i];
    }
  }
  m.be->synchronize();  // e.g. a non-finite logit found by logprob_forward on the device
}

Tensor LlamaModel::forward_train(const TokenBatch& b, TrainHead head) {
  Impl& m = *impl_;
  if (head == TrainHead::LogProbs) {
    SPPO_CHECK(!m.cfg.sequence_classification, "training on log-probabilities: this is a sequence-classification model");
    check_batch(b, "sequence_logprobs", true);
  } else {
    SPPO_CHECK(m.cfg.sequence_classification, "training on scores: this is a causal LM without a score head");
    check_batch(b, "scores", false);
    m.last_rows(b);
  }
  m.prepare_batch(b);
  m.forward(true);
  m.head_kind = head;
  if (head == TrainHead::Scores) return score_head(m, b);
  m.rows = m.response_rows(b);
  m.logprob_head_forward(true);
  return m.seq_out;
}

void LlamaModel::backward_train(const Tensor& grad, const Tensor& grads, const BackwardHooks* hooks) {
  Impl& m = *impl_;
  SPPO_CHECK(m.kept, "backward_train: call forward_train first");
  // The arena's type is the trainer's choice (F32, or BF16 for a bf16 model: model/precision.h).
  SPPO_CHECK(gradient_dtype_allowed(m.prec, grads.dtype), "backward_train: grads must be ", dtype_name(m.dt.grad),
             m.prec == Precision::BF16 ? " or BF16" : "", " for this ", precision_name(m.prec), " model (got ",
             dtype_name(grads.dtype), ")");
  require(grads, grads.dtype, m.layout.total(), "backward_train", "grads");
  const int64_t H = m.cfg.hidden_size, nl = m.cfg.num_labels;
  const BackwardTemps t = m.plan_backward();
  m.be->zero(t.d_hidden.data, static_cast<std::size_t>(m.N * H) * dtype_size(m.dt.act));
  if (m.head_kind == TrainHead::LogProbs) {
    require(grad, m.dt.stat, m.B, "backward_train", "grad");
    m.logprob_head_backward(grad, t.d_hidden, grads);
  } else {
    require(grad, m.dt.act, m.B * nl, "backward_train", "grad");
    const Tensor dWs = Impl::G(grads, m.layout[m.layout.head()]);
    m.be->matmul(grad, m.W(m.layout.head()), m.head_dh, m.B, H, nl, false, false, false);
    m.be->matmul(grad, m.head_h, dWs, nl, H, m.B, true, false, true);
    m.be->scatter_add_rows(m.head_dh, m.score_rows, m.B, H, m.N, t.d_hidden);
  }
  m.backward(t.d_hidden, grads, t, hooks);
}

}  // namespace sppo
