// LlamaModel: the public fp32 CPU model (model/llama.h) over LlamaEngine<float>, plus the
// preference-loss step and batched generation.
#include <algorithm>
#include <random>

#include "core/error.h"
#include "kernels/sppo_loss.h"
#include "model/llama.h"
#include "model/llama_engine.h"
#include "model/sampler.h"

namespace sppo {

struct LlamaModel::Impl {
  explicit Impl(const LlamaConfig& c) : eng(c) {
    for (auto& p : eng.params()) {
      ParamRef r;
      r.name = p.name;
      r.shape = p.shape;
      r.data = p.data.data();
      r.grad = p.grad.data();
      refs.push_back(std::move(r));
    }
  }
  LlamaEngine<float> eng;
  std::vector<ParamRef> refs;  // views into eng's storage, which never reallocates
};

LlamaModel::LlamaModel(const LlamaConfig& config) : impl_(new Impl(config)) {}
LlamaModel::~LlamaModel() = default;
const LlamaConfig& LlamaModel::config() const { return impl_->eng.config(); }
std::vector<ParamRef>& LlamaModel::params() { return impl_->refs; }

ParamRef* LlamaModel::find_param(const std::string& name) {
  for (auto& r : impl_->refs)
    if (r.name == name) return &r;
  return nullptr;
}

void LlamaModel::init_random(uint64_t seed, double std) { impl_->eng.init_random(seed, std); }
void LlamaModel::set_gradient_checkpointing(bool on) { impl_->eng.set_checkpointing(on); }
void LlamaModel::zero_grad() { impl_->eng.zero_grad(); }
void LlamaModel::logits(const TokenBatch& batch, float* out) { impl_->eng.logits(batch, out); }
void LlamaModel::scores(const TokenBatch& batch, float* out) { impl_->eng.scores(batch, out); }

void LlamaModel::sequence_logprobs(const TokenBatch& batch, float* seq_logp, float* token_logp) {
  impl_->eng.sequence_logprobs(batch, seq_logp, token_logp);
}

void LlamaModel::sequence_logprobs_backward(const TokenBatch& batch, const float* grad_seq, float scale) {
  SPPO_CHECK(grad_seq != nullptr, "sequence_logprobs_backward: grad_seq is null");
  impl_->eng.sequence_logprobs_train(batch, nullptr, [&](const float*, float* g) {
    for (int64_t b = 0; b < batch.B; ++b) g[b] = grad_seq[b] * scale;
  });
}

namespace {
// Chosen rows then rejected rows in one batch, right-padded to the longer side (mask 0), so a
// single forward/backward covers both.
struct Joined {
  std::vector<int32_t> tok;
  std::vector<uint8_t> mask, resp;
  TokenBatch batch;
};
Joined join(const TokenBatch& c, const TokenBatch& r) {
  Joined j;
  const int64_t T = std::max(c.T, r.T), B = c.B + r.B;
  j.tok.assign(B * T, 0);
  j.mask.assign(B * T, 0);
  j.resp.assign(B * T, 0);
  auto put = [&](const TokenBatch& s, int64_t row0) {
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t t = 0; t < s.T; ++t) {
        const int64_t d = (row0 + b) * T + t, i = b * s.T + t;
        j.tok[d] = s.tokens[i];
        j.mask[d] = s.attention_mask[i];
        j.resp[d] = s.response_mask[i];
      }
  };
  put(c, 0);
  put(r, c.B);
  j.batch = TokenBatch{B, T, j.tok.data(), j.mask.data(), j.resp.data()};
  return j;
}
}  // namespace

StepMetrics LlamaModel::loss_and_backward(const PairBatch& pairs, LossType type, double beta, float scale) {
  const TokenBatch& c = pairs.chosen;
  const TokenBatch& r = pairs.rejected;
  SPPO_CHECK(c.B == r.B, "loss_and_backward: chosen has ", c.B, " rows but rejected has ", r.B);
  auto& eng = impl_->eng;
  eng.check_batch(c, "loss_and_backward chosen", true);
  eng.check_batch(r, "loss_and_backward rejected", true);
  Joined j = join(c, r);
  const int64_t B = c.B;
  StepMetrics m;
  eng.sequence_logprobs_train(j.batch, nullptr, [&](const float* seq, float* grad) {
    std::vector<float> losses(B), gc(B), gr(B);
    LossInputs in;
    in.B = B;
    in.policy_chosen = seq;
    in.policy_rejected = seq + B;
    in.ref_chosen = pairs.ref_chosen;
    in.ref_rejected = pairs.ref_rejected;
    in.chosen_probs = pairs.chosen_probs;
    in.chosen_probs_win = pairs.chosen_probs_win;
    in.chosen_probs_lose = pairs.chosen_probs_lose;
    in.beta = beta;
    in.type = type;
    LossOutputs out;
    out.losses = losses.data();
    out.grad_chosen = gc.data();
    out.grad_rejected = gr.data();
    m.summary = cpu::sppo_loss(in, out);
    double sc = 0, sr = 0;
    for (int64_t b = 0; b < B; ++b) {
      grad[b] = gc[b] * scale;
      grad[B + b] = gr[b] * scale;
      sc += seq[b];
      sr += seq[B + b];
    }
    m.policy_chosen_logp = sc / B;
    m.policy_rejected_logp = sr / B;
  });
  for (uint8_t v : j.mask) m.tokens += v;
  return m;
}

std::vector<Generation> LlamaModel::generate(const std::vector<std::vector<int32_t>>& prompts,
                                             const std::vector<uint64_t>& seeds, const GenerateOptions& opts) {
  auto& eng = impl_->eng;
  const LlamaConfig& cfg = eng.config();
  const int64_t V = cfg.vocab_size;
  SPPO_CHECK(!cfg.sequence_classification, "generate: a sequence-classification model cannot generate");
  SPPO_CHECK(seeds.size() == prompts.size(), "generate: ", prompts.size(), " prompts but ", seeds.size(), " seeds");
  validate_generate_options(opts, V);
  for (size_t i = 0; i < prompts.size(); ++i) {
    SPPO_CHECK(!prompts[i].empty(), "generate: prompt ", i, " is empty");
    for (size_t t = 0; t < prompts[i].size(); ++t)
      SPPO_CHECK(prompts[i][t] >= 0 && prompts[i][t] < V, "generate: prompt ", i, " token ", t, " = ",
                 prompts[i][t], " is outside the vocabulary [0, ", V, ")");
  }
  const int64_t n = static_cast<int64_t>(prompts.size());
  std::vector<Generation> out(n);
  if (n == 0 || opts.max_new_tokens == 0) return out;
  std::vector<std::mt19937_64> rng;
  std::vector<int64_t> caps(n);
  for (int64_t i = 0; i < n; ++i) {
    rng.emplace_back(seeds[i]);
    caps[i] = static_cast<int64_t>(prompts[i].size()) + opts.max_new_tokens;
  }
  KVCache<float> cache;
  eng.cache_init(cache, caps);
  std::vector<char> active(n, 1);
  auto is_eos = [&](int32_t t) {
    return std::find(opts.eos_ids.begin(), opts.eos_ids.end(), t) != opts.eos_ids.end();
  };
  auto take = [&](int64_t i, const float* lg) {
    float lp = 0;
    const int32_t t = sample_next(lg, V, opts, rng[i], &lp);
    out[i].tokens.push_back(t);
    out[i].logprobs.push_back(lp);
    if (is_eos(t)) {
      out[i].stopped_at_eos = true;
      active[i] = 0;
    } else if (static_cast<int64_t>(out[i].tokens.size()) >= opts.max_new_tokens) {
      active[i] = 0;
    }
    if (!active[i]) cache.release(i);
  };
  // Prefill in groups of about 2048 prompt tokens to bound activation memory.
  std::vector<float> lg;
  for (int64_t i0 = 0; i0 < n;) {
    std::vector<DecodeItem> items;
    int64_t rows = 0;
    int64_t i = i0;
    for (; i < n && (items.empty() || rows + static_cast<int64_t>(prompts[i].size()) <= 2048); ++i) {
      items.push_back(DecodeItem{i, prompts[i].data(), static_cast<int64_t>(prompts[i].size())});
      rows += static_cast<int64_t>(prompts[i].size());
    }
    lg.resize(items.size() * V);
    eng.decode(cache, items, lg.data());
    for (size_t k = 0; k < items.size(); ++k) take(items[k].seq, lg.data() + k * V);
    i0 = i;
  }
  for (;;) {
    std::vector<DecodeItem> items;
    for (int64_t i = 0; i < n; ++i)
      if (active[i]) items.push_back(DecodeItem{i, &out[i].tokens.back(), 1});
    if (items.empty()) break;
    lg.resize(items.size() * V);
    eng.decode(cache, items, lg.data());
    for (size_t k = 0; k < items.size(); ++k) take(items[k].seq, lg.data() + k * V);
  }
  return out;
}

}  // namespace sppo
