// The Llama cases the bf16 suites share (test_model_bf16 on the CPU, test_model_cuda's bf16
// cases): random preference pairs, one preference step into a zeroed F32 (or BF16) gradient arena
// on any backend, a parameter's slice of an arena, and ragged KV-cache decoding read back as F32.
#pragma once
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "backend/buffer.h"
#include "backend/workspace.h"
#include "bf16_compare.h"
#include "engine_compare.h"
#include "model/kv_cache.h"
#include "test_model_common.h"
#include "train/preference_step.h"

namespace bf16_test {

// One preference step (SPPO loss) into a zeroed F32 gradient arena (or one of `gdt`: BF16, the bf16
// gradient arena of a bf16 model); returns the arena as floats (BF16 widened).
inline std::vector<float> preference_grads(sppo::LlamaModel& m, const sppo::PairBatch& pb, double* loss,
                                           sppo::DType gdt = sppo::DType::F32) {
  const int64_t total = m.layout().total();
  sppo::Buffer grads(m.backend_ptr(), static_cast<size_t>(total) * sppo::dtype_size(gdt));
  const sppo::Tensor G = grads.view(gdt, total);
  m.backend().zero(G.data, G.bytes());
  sppo::Workspace ws(m.backend_ptr(), "test loss");
  const sppo::StepMetrics sm = sppo::preference_step(m, pb, sppo::LossType::SPPO, 0.1, 0.5, G, nullptr, ws);
  if (loss) *loss = sm.summary.loss;
  if (gdt == sppo::DType::F32) return engine_test::get(m.backend(), G);
  std::vector<uint16_t> h(static_cast<size_t>(total));
  m.backend().download(h.data(), G.data, G.bytes());
  std::vector<float> out(h.size());
  for (size_t i = 0; i < h.size(); ++i) out[i] = sppo::bf16_to_f32(h[i]);
  return out;
}

struct Pairs {
  model_test::Batch c, r;
  std::vector<float> refc, refr, pw, pl, pwl;
  sppo::PairBatch view() const {
    return sppo::PairBatch{c.view(), r.view(), refc.data(), refr.data(), pwl.data(), pw.data(), pl.data()};
  }
};
inline Pairs random_pairs(sppo_test::Rng& rng, int64_t V) {
  Pairs p;
  using model_test::pad;
  using model_test::random_tokens;
  p.c = pad({random_tokens(rng, 6, V), random_tokens(rng, 9, V), random_tokens(rng, 4, V)}, {3, 5, 2}, true);
  p.r = pad({random_tokens(rng, 8, V), random_tokens(rng, 3, V), random_tokens(rng, 5, V)}, {6, 1, 3}, false);
  for (int i = 0; i < 3; ++i) {
    p.refc.push_back(static_cast<float>(rng.uniform(-30, -10)));
    p.refr.push_back(static_cast<float>(rng.uniform(-30, -10)));
    p.pw.push_back(static_cast<float>(rng.uniform(0.5, 1)));
    p.pl.push_back(static_cast<float>(rng.uniform(0, 0.5)));
    p.pwl.push_back(static_cast<float>(rng.uniform(0, 1)));
  }
  return p;
}

inline std::vector<float> slice(const std::vector<float>& v, const sppo::ParamSpec& p) {
  return std::vector<float>(v.begin() + p.offset, v.begin() + p.offset + p.numel);
}

// Ragged KV-cache decoding of `seqs` on `m` (any backend and precision): a prefill of prompt[i]
// tokens per sequence, then one token a step per sequence until each is consumed, through blocks
// of 8 positions. Returns each call's last-token logits (F32, row by row) in call order, and in
// `rows` the (sequence, position) each row predicts from.
inline std::vector<float> decode_logits(sppo::LlamaModel& m, const std::vector<std::vector<int32_t>>& seqs,
                                        const std::vector<int64_t>& prompt,
                                        std::vector<std::pair<int64_t, int64_t>>* rows = nullptr) {
  const int64_t V = m.config().vocab_size, S = static_cast<int64_t>(seqs.size());
  std::vector<int64_t> lengths;
  int64_t longest = 0;
  for (const auto& q : seqs) {
    lengths.push_back(static_cast<int64_t>(q.size()));
    longest = std::max(longest, lengths.back());
  }
  sppo::KVCache cache(m, S, longest, sppo::KVCache::blocks_needed(lengths, 1, 0, 8), 8);
  const sppo::DType act = m.dtypes().act;
  sppo::Buffer buf(m.backend_ptr(), static_cast<size_t>(S * V) * sppo::dtype_size(act));
  const sppo::Tensor last = buf.view(act, S * V);
  std::vector<int> ids;
  std::vector<sppo::DecodeItem> items;
  std::vector<std::pair<int64_t, int64_t>> at;
  for (int64_t i = 0; i < S; ++i) {
    ids.push_back(cache.open());
    items.push_back({ids.back(), seqs[i].data(), prompt[i]});
    at.push_back({i, prompt[i] - 1});
  }
  std::vector<float> out;
  for (int64_t step = 0; !items.empty(); ++step) {
    m.decode(cache, items, last);
    std::vector<float> lg(static_cast<size_t>(items.size()) * V, engine_test::kNaN);
    sppo::download_as(m.backend(), last, sppo::Tensor(lg.data(), sppo::DType::F32, static_cast<int64_t>(lg.size())),
                      static_cast<int64_t>(lg.size()));
    out.insert(out.end(), lg.begin(), lg.end());
    if (rows) rows->insert(rows->end(), at.begin(), at.end());
    items.clear();
    at.clear();
    for (int64_t i = 0; i < S; ++i) {
      const int64_t pos = prompt[i] + step;
      if (pos < lengths[i]) {
        items.push_back({ids[i], seqs[i].data() + pos, 1});
        at.push_back({i, pos});
      }
    }
  }
  m.backend().synchronize();
  return out;
}

}  // namespace bf16_test
