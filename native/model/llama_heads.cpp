// LlamaEngine heads: full logits, sequence-classification scores, and response-token
// log-probabilities computed only at the rows that predict a response token, in chunks.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/logprob.h"
#include "model/cpu/matmul.h"
#include "model/engine_internal.h"

namespace sppo {

using namespace cpu_model;

namespace {

// Log-probabilities of labels from a logits chunk; float goes through the shared kernels,
// double (tests only) through the same formula written here.
void lp_forward(const float* logits, int64_t n, int64_t V, const int32_t* labels, float* out, float* lse) {
  cpu::logprob_forward(logits, DType::F32, n, V, labels, out, lse);
}
void lp_backward_inplace(float* logits, int64_t n, int64_t V, const int32_t* labels, const float* g,
                         const float* lse) {
  cpu::logprob_backward(logits, DType::F32, n, V, labels, g, lse, logits, DType::F32);
}
void lp_forward(const double* logits, int64_t n, int64_t V, const int32_t* labels, double* out, double* lse) {
  for (int64_t r = 0; r < n; ++r) {
    const double* x = logits + r * V;
    double m = x[0];
    for (int64_t j = 1; j < V; ++j) m = std::max(m, x[j]);
    double s = 0;
    for (int64_t j = 0; j < V; ++j) s += std::exp(x[j] - m);
    lse[r] = m + std::log(s);
    out[r] = x[labels[r]] - lse[r];
  }
}
void lp_backward_inplace(double* logits, int64_t n, int64_t V, const int32_t* labels, const double* g,
                         const double* lse) {
  for (int64_t r = 0; r < n; ++r) {
    double* x = logits + r * V;
    for (int64_t j = 0; j < V; ++j) x[j] = -g[r] * std::exp(x[j] - lse[r]);
    x[labels[r]] += g[r];
  }
}

}  // namespace

template <typename T>
typename LlamaEngine<T>::Rows LlamaEngine<T>::response_rows(const TokenBatch& b) const {
  Rows rows;
  for (int64_t bi = 0; bi < b.B; ++bi)
    for (int64_t t = 1; t < b.T; ++t)
      if (b.response_mask[bi * b.T + t]) {
        rows.row.push_back(bi * b.T + t - 1);  // the logits at t-1 predict token t
        rows.seq.push_back(bi);
        rows.label.push_back(b.tokens[bi * b.T + t]);
        rows.pos.push_back(static_cast<int32_t>(t));
      }
  return rows;
}

// Forward (d_hidden null): tok_lp[i] for each row; keep: hold a single chunk's logits for the
// backward. Backward: recomputes (or reuses) each chunk's logits, turns them into d logits in
// place with weight grad_seq[seq], and adds d hidden and d head weight.
template <typename T>
void LlamaEngine<T>::head_logprob(const Rows& rows, T* tok_lp, T* d_hidden, const T* grad_seq, bool keep) {
  const int64_t n = static_cast<int64_t>(rows.row.size()), H = cfg_.hidden_size, V = cfg_.vocab_size;
  if (n == 0) return;
  // About 16M logits per chunk bounds the extra memory whatever the vocabulary.
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(n, (int64_t(1) << 24) / V));
  const bool reuse = d_hidden && head_cached_ && chunk == n;
  std::vector<T> h(chunk * H), lg, lse, g(chunk), dh(chunk * H);
  if (reuse) {
    lg.swap(head_logits_);
    lse.swap(head_lse_);
  } else {
    lg.resize(chunk * V);
    lse.resize(chunk);
  }
  head_cached_ = false;
  const T* Wh = head_w();
  for (int64_t c0 = 0; c0 < n; c0 += chunk) {
    const int64_t m = std::min(chunk, n - c0);
    for (int64_t i = 0; i < m; ++i) {
      const T* src = hidden_.data() + rows.row[c0 + i] * H;
      std::copy(src, src + H, h.data() + i * H);
    }
    if (!reuse) {
      matmul_nt(h.data(), Wh, lg.data(), m, V, H, false);
      std::vector<T> out(m);
      lp_forward(lg.data(), m, V, rows.label.data() + c0, out.data(), lse.data());
      if (!d_hidden) {
        std::copy(out.begin(), out.end(), tok_lp + c0);
        if (keep && chunk == n) {
          head_logits_.swap(lg);
          head_lse_.swap(lse);
          head_cached_ = true;
        }
        continue;
      }
    }
    for (int64_t i = 0; i < m; ++i) g[i] = grad_seq[rows.seq[c0 + i]];
    lp_backward_inplace(lg.data(), m, V, rows.label.data() + c0, g.data(), lse.data());
    matmul_nn(lg.data(), Wh, dh.data(), m, H, V, false);
    matmul_tn_acc(lg.data(), h.data(), head_g(), m, V, H);
    for (int64_t i = 0; i < m; ++i) {
      T* dst = d_hidden + rows.row[c0 + i] * H;
      for (int64_t j = 0; j < H; ++j) dst[j] += dh[i * H + j];
    }
  }
}

template <typename T>
void LlamaEngine<T>::logits(const TokenBatch& batch, T* out) {
  SPPO_CHECK(!cfg_.sequence_classification, "logits: this is a sequence-classification model (use scores)");
  SPPO_CHECK(out != nullptr, "logits: output buffer is null");
  check_batch(batch, "logits", false);
  forward(batch, false);
  matmul_nt(hidden_.data(), head_w(), out, N_, cfg_.vocab_size, cfg_.hidden_size, false);
}

namespace {
int64_t last_real(const TokenBatch& b, int64_t bi) {
  for (int64_t t = b.T - 1; t >= 0; --t)
    if (b.attention_mask[bi * b.T + t]) return t;
  fail("scores: row ", bi, " has no real token (attention_mask is all 0)");
}
}  // namespace

template <typename T>
void LlamaEngine<T>::scores(const TokenBatch& batch, T* out) {
  SPPO_CHECK(cfg_.sequence_classification, "scores: this is a causal LM without a score head (use logits)");
  SPPO_CHECK(out != nullptr, "scores: output buffer is null");
  check_batch(batch, "scores", false);
  for (int64_t b = 0; b < batch.B; ++b) last_real(batch, b);
  forward(batch, false);
  const int64_t H = cfg_.hidden_size, nl = cfg_.num_labels;
  for (int64_t b = 0; b < batch.B; ++b) {
    const int64_t row = b * batch.T + last_real(batch, b);
    matmul_nt(hidden_.data() + row * H, W(score_), out + b * nl, 1, nl, H, false);
  }
}

template <typename T>
void LlamaEngine<T>::scores_backward(const TokenBatch& batch, const T* d_scores) {
  SPPO_CHECK(cfg_.sequence_classification, "scores_backward: this is a causal LM without a score head");
  check_batch(batch, "scores_backward", false);
  for (int64_t b = 0; b < batch.B; ++b) last_real(batch, b);
  forward(batch, true);
  const int64_t H = cfg_.hidden_size, nl = cfg_.num_labels;
  std::vector<T> dh(N_ * H, T(0));
  for (int64_t b = 0; b < batch.B; ++b) {
    const int64_t row = b * batch.T + last_real(batch, b);
    matmul_nn(d_scores + b * nl, W(score_), dh.data() + row * H, 1, H, nl, false);
    matmul_tn_acc(d_scores + b * nl, hidden_.data() + row * H, G(score_), 1, nl, H);
  }
  backward(dh.data());
}

template <typename T>
void LlamaEngine<T>::sequence_logprobs(const TokenBatch& batch, T* seq_logp, T* token_logp) {
  SPPO_CHECK(!cfg_.sequence_classification, "sequence_logprobs: this is a sequence-classification model");
  SPPO_CHECK(seq_logp != nullptr, "sequence_logprobs: seq_logp is null");
  check_batch(batch, "sequence_logprobs", true);
  forward(batch, false);
  const Rows rows = response_rows(batch);
  std::vector<T> tok(rows.row.size());
  head_logprob(rows, tok.data(), nullptr, nullptr);
  std::vector<double> sums(batch.B, 0.0);
  for (size_t i = 0; i < tok.size(); ++i) sums[rows.seq[i]] += static_cast<double>(tok[i]);
  for (int64_t b = 0; b < batch.B; ++b) seq_logp[b] = static_cast<T>(sums[b]);
  if (token_logp) {
    std::fill(token_logp, token_logp + batch.B * batch.T, T(0));
    for (size_t i = 0; i < tok.size(); ++i) token_logp[rows.seq[i] * batch.T + rows.pos[i]] = tok[i];
  }
}

template <typename T>
void LlamaEngine<T>::sequence_logprobs_train(const TokenBatch& batch, T* seq_logp,
                                             const std::function<void(const T*, T*)>& loss) {
  SPPO_CHECK(!cfg_.sequence_classification, "sequence_logprobs: this is a sequence-classification model");
  check_batch(batch, "sequence_logprobs", true);
  forward(batch, true);
  const Rows rows = response_rows(batch);
  std::vector<T> tok(rows.row.size());
  head_logprob(rows, tok.data(), nullptr, nullptr, true);
  std::vector<double> sums(batch.B, 0.0);
  for (size_t i = 0; i < tok.size(); ++i) sums[rows.seq[i]] += static_cast<double>(tok[i]);
  std::vector<T> seq(batch.B), grad(batch.B, T(0));
  for (int64_t b = 0; b < batch.B; ++b) seq[b] = static_cast<T>(sums[b]);
  if (seq_logp) std::copy(seq.begin(), seq.end(), seq_logp);
  loss(seq.data(), grad.data());
  std::vector<T> dh(N_ * cfg_.hidden_size, T(0));
  head_logprob(rows, nullptr, dh.data(), grad.data());
  backward(dh.data());
}

#define SPPO_INSTANTIATE(T)                                                                               \
  template typename LlamaEngine<T>::Rows LlamaEngine<T>::response_rows(const TokenBatch&) const;           \
  template void LlamaEngine<T>::head_logprob(const Rows&, T*, T*, const T*, bool);                               \
  template void LlamaEngine<T>::logits(const TokenBatch&, T*);                                             \
  template void LlamaEngine<T>::scores(const TokenBatch&, T*);                                             \
  template void LlamaEngine<T>::scores_backward(const TokenBatch&, const T*);                              \
  template void LlamaEngine<T>::sequence_logprobs(const TokenBatch&, T*, T*);                              \
  template void LlamaEngine<T>::sequence_logprobs_train(const TokenBatch&, T*,                             \
                                                        const std::function<void(const T*, T*)>&);
SPPO_INSTANTIATE(float)
SPPO_INSTANTIATE(double)
#undef SPPO_INSTANTIATE

}  // namespace sppo
