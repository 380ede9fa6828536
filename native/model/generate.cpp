// generate (model/generate.h): prefill the prompts in chunks of about 2048 tokens, fork each
// prompt's cache into its samples, then decode all live samples one token a step; finished
// samples give their blocks back. The cancel point is checked every step.
#include "model/generate.h"

#include <algorithm>
#include <cmath>

#include "backend/workspace.h"
#include "core/error.h"
#include "model/kv_cache.h"

namespace sppo {

void validate_generate_options(const GenerateOptions& o, int64_t V) {
  SPPO_CHECK(o.max_new_tokens >= 0, "generate: max_new_tokens must be >= 0, got ", o.max_new_tokens);
  SPPO_CHECK(std::isfinite(o.temperature) && o.temperature >= 0, "generate: temperature must be >= 0, got ",
             o.temperature);
  SPPO_CHECK(std::isfinite(o.top_p) && o.top_p > 0 && o.top_p <= 1, "generate: top_p must be in (0, 1], got ",
             o.top_p);
  SPPO_CHECK(o.top_k >= 0, "generate: top_k must be >= 0, got ", o.top_k);
  for (size_t i = 0; i < o.eos_ids.size(); ++i)
    SPPO_CHECK(o.eos_ids[i] >= 0 && o.eos_ids[i] < V, "generate: eos_ids[", i, "] = ", o.eos_ids[i],
               " is outside the vocabulary [0, ", V, ")");
}

namespace {

// Chooses the next token of n rows of logits (backend memory) and brings tokens and log-probs to
// the host.
class Sampler {
 public:
  Sampler(LlamaModel& m, const GenerateOptions& o) : m_(m), o_(o), ws_(m.backend_ptr(), "sampling") {}

  void pick(const Tensor& logits, int64_t n, const std::vector<SampleStream>& streams, std::vector<int32_t>& tokens,
            std::vector<float>& logp) {
    const int64_t V = m_.config().vocab_size;
    Backend& b = m_.backend();
    const bool greedy = o_.greedy || o_.temperature == 0.0;
    ArenaPlan plan;
    plan.add("w", DType::F32, greedy ? 0 : n * V);
    plan.add("tokens", DType::I32, n);
    plan.add("logp", DType::F32, n);
    const auto v = ws_.take(plan);
    tokens.resize(static_cast<size_t>(n));
    logp.assign(static_cast<size_t>(n), 0.f);
    if (greedy) {
      b.argmax_rows(logits, n, V, v[1]);
    } else {
      b.sample_weights(logits, n, V, o_.temperature, v[0]);
      b.sample_pick(v[0], n, V, o_.top_k, o_.top_p, streams.data(), v[1], v[2]);
      b.download(logp.data(), v[2].data, v[2].bytes());
    }
    b.download(tokens.data(), v[1].data, v[1].bytes());  // the step boundary: EOS decides who goes on
    b.synchronize();  // a device backend's deferred errors (a non-finite logit) before the tokens are used
  }

 private:
  LlamaModel& m_;
  const GenerateOptions& o_;
  Workspace ws_;
};

}  // namespace

std::vector<Generation> generate(LlamaModel& model, const std::vector<std::vector<int32_t>>& prompts,
                                 int64_t samples, const std::vector<uint64_t>& seeds, const GenerateOptions& opts) {
  const LlamaConfig& cfg = model.config();
  const int64_t V = cfg.vocab_size;
  SPPO_CHECK(!cfg.sequence_classification, "generate: a sequence-classification model cannot generate");
  SPPO_CHECK(samples >= 1, "generate: samples per prompt must be >= 1, got ", samples);
  SPPO_CHECK(seeds.size() == prompts.size(), "generate: ", prompts.size(), " prompts but ", seeds.size(), " seeds");
  validate_generate_options(opts, V);
  std::vector<int64_t> lengths;
  int64_t longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    SPPO_CHECK(!prompts[i].empty(), "generate: prompt ", i, " is empty");
    for (size_t t = 0; t < prompts[i].size(); ++t)
      SPPO_CHECK(prompts[i][t] >= 0 && prompts[i][t] < V, "generate: prompt ", i, " token ", t, " = ", prompts[i][t],
                 " is outside the vocabulary [0, ", V, ")");
    lengths.push_back(static_cast<int64_t>(prompts[i].size()));
    longest = std::max(longest, lengths.back());
  }
  const int64_t np = static_cast<int64_t>(prompts.size()), n = np * samples;
  std::vector<Generation> out(static_cast<size_t>(n));
  if (n == 0 || opts.max_new_tokens == 0) return out;

  const int64_t bs = 16;
  KVCache cache(model, n + np, longest + opts.max_new_tokens,
                KVCache::blocks_needed(lengths, samples, opts.max_new_tokens, bs), bs);
  Backend& be = model.backend();
  const CancelPoint& cancel = model.cancel_point();
  Sampler sampler(model, opts);
  Workspace logits_ws(model.backend_ptr(), "the generation logits");
  std::vector<int> seq_of(static_cast<size_t>(n), -1);
  std::vector<uint8_t> active(static_cast<size_t>(n), 0);
  auto is_eos = [&](int32_t t) { return std::find(opts.eos_ids.begin(), opts.eos_ids.end(), t) != opts.eos_ids.end(); };
  std::vector<int32_t> tokens;
  std::vector<float> logp;
  // Takes the sampled tokens of samples `ids` (in the order of the logits rows).
  auto take = [&](const std::vector<int64_t>& ids) {
    for (size_t r = 0; r < ids.size(); ++r) {
      const int64_t s = ids[r];
      Generation& g = out[static_cast<size_t>(s)];
      g.tokens.push_back(tokens[r]);
      g.logprobs.push_back(logp[r]);
      const bool eos = is_eos(tokens[r]);
      g.stopped_at_eos = eos;
      if (eos || static_cast<int64_t>(g.tokens.size()) >= opts.max_new_tokens) {
        active[static_cast<size_t>(s)] = 0;
        cache.close(seq_of[static_cast<size_t>(s)]);  // its blocks go back to the pool
      }
    }
  };
  auto streams_for = [&](const std::vector<int64_t>& ids) {
    std::vector<SampleStream> st;
    for (int64_t s : ids)
      st.push_back({seeds[static_cast<size_t>(s / samples)], static_cast<uint64_t>(s % samples),
                    static_cast<uint64_t>(out[static_cast<size_t>(s)].tokens.size())});
    return st;
  };

  // Prefill in groups of about 2048 prompt tokens (bounded activations), then fork each prompt.
  for (int64_t i0 = 0; i0 < np;) {
    cancel.check();
    std::vector<DecodeItem> items;
    int64_t rows = 0, i = i0;
    for (; i < np && (items.empty() || rows + lengths[static_cast<size_t>(i)] <= 2048); ++i) {
      items.push_back(DecodeItem{cache.open(), prompts[static_cast<size_t>(i)].data(), lengths[static_cast<size_t>(i)]});
      rows += lengths[static_cast<size_t>(i)];
    }
    const int64_t ni = static_cast<int64_t>(items.size());
    ArenaPlan plan;
    plan.add("prefill", model.dtypes().act, ni * V);
    plan.add("expanded", model.dtypes().act, ni * samples * V);
    const auto lv = logits_ws.take(plan);
    model.decode(cache, items, lv[0]);
    // Each sample of a prompt starts from the prompt's logits row.
    const std::size_t row_bytes = static_cast<std::size_t>(V) * dtype_size(model.dtypes().act);
    std::vector<int64_t> ids;
    for (int64_t k = 0; k < ni; ++k)
      for (int64_t j = 0; j < samples; ++j) {
        const int64_t s = (i0 + k) * samples + j;
        ids.push_back(s);
        seq_of[static_cast<size_t>(s)] = cache.fork(items[static_cast<size_t>(k)].seq);
        active[static_cast<size_t>(s)] = 1;
        be.copy(static_cast<char*>(lv[1].data) + (k * samples + j) * row_bytes,
                static_cast<char*>(lv[0].data) + k * row_bytes, row_bytes);
      }
    for (const auto& it : items) cache.close(it.seq);
    sampler.pick(lv[1], static_cast<int64_t>(ids.size()), streams_for(ids), tokens, logp);
    take(ids);
    i0 = i;
  }
  for (;;) {
    cancel.check();
    std::vector<DecodeItem> items;
    std::vector<int64_t> ids;
    for (int64_t s = 0; s < n; ++s)
      if (active[static_cast<size_t>(s)]) {
        items.push_back(DecodeItem{seq_of[static_cast<size_t>(s)], &out[static_cast<size_t>(s)].tokens.back(), 1});
        ids.push_back(s);
      }
    if (items.empty()) break;
    ArenaPlan plan;
    plan.add("step", model.dtypes().act, static_cast<int64_t>(items.size()) * V);
    const Tensor lg = logits_ws.take(plan)[0];
    model.decode(cache, items, lg);
    sampler.pick(lg, static_cast<int64_t>(ids.size()), streams_for(ids), tokens, logp);
    take(ids);
  }
  return out;
}

}  // namespace sppo
