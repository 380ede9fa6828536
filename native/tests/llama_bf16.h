// The Llama cases the bf16 suites share (test_model_bf16 on the CPU, test_model_cuda's bf16
// cases): random preference pairs, one preference step into a zeroed F32 gradient arena on any
// backend, and a parameter's slice of an arena.
#pragma once
#include <string>
#include <vector>

#include "backend/buffer.h"
#include "backend/workspace.h"
#include "engine_compare.h"
#include "test_model_common.h"
#include "train/preference_step.h"

namespace bf16_test {

// One preference step (SPPO loss) into a zeroed F32 gradient arena; returns the arena.
inline std::vector<float> preference_grads(sppo::LlamaModel& m, const sppo::PairBatch& pb, double* loss) {
  const int64_t total = m.layout().total();
  sppo::Buffer grads(m.backend_ptr(), static_cast<size_t>(total) * sizeof(float));
  const sppo::Tensor G = grads.view(sppo::DType::F32, total);
  m.backend().zero(G.data, G.bytes());
  sppo::Workspace ws(m.backend_ptr(), "test loss");
  const sppo::StepMetrics sm = sppo::preference_step(m, pb, sppo::LossType::SPPO, 0.1, 0.5, G, nullptr, ws);
  if (loss) *loss = sm.summary.loss;
  return engine_test::get(m.backend(), G);
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

}  // namespace bf16_test
