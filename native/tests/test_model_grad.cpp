// Backward tests: finite differences in float64 for every parameter kind, the fp32 model against
// the float64 engine, gradient checkpointing, padding invariance, and the SPPO loss step.
#include <algorithm>
#include <cmath>

#include "core/parallel.h"  // omp.h when built with OpenMP
#include "kernels/sppo_loss.h"
#include "test_model_common.h"

using namespace model_test;
template <typename T>
using LlamaEngine = model_test::Engine<T>;
using LlamaModel = model_test::Engine<float>;

namespace {

// Checks analytic gradients of f against central differences on each parameter: the element
// with the largest |gradient| plus random ones.
template <typename F>
void fd_check(LlamaEngine<double>& e, sppo_test::Rng& rng, F&& f, int random_per_param = 3) {
  const double h = 1e-5;
  for (auto& p : e.params()) {
    std::vector<size_t> idx;
    size_t big = 0;
    for (size_t j = 0; j < p.grad.size(); ++j)
      if (std::fabs(p.grad[j]) > std::fabs(p.grad[big])) big = j;
    idx.push_back(big);
    for (int k = 0; k < random_per_param; ++k) idx.push_back(static_cast<size_t>(rng.integer(0, p.data.size() - 1)));
    CHECK(std::fabs(p.grad[big]) > 1e-6);  // every parameter kind gets a real gradient
    double worst = 0;
    for (size_t j : idx) {
      const double orig = p.data[j];
      p.data[j] = orig + h;
      const double fp = f();
      p.data[j] = orig - h;
      const double fm = f();
      p.data[j] = orig;
      const double fd = (fp - fm) / (2 * h);
      worst = std::max(worst, std::fabs(fd - p.grad[j]) / (1e-7 + std::fabs(fd)));
      CHECK_CLOSE(p.grad[j], fd, 1e-7, 1e-5);
    }
    if (worst > 1e-5) std::printf("  %s: worst rel err %.2e\n", p.name.c_str(), worst);
  }
}

std::vector<std::vector<int32_t>> seqs_for(sppo_test::Rng& rng, int64_t V, int64_t scale = 1) {
  return {random_tokens(rng, 5 * scale, V), random_tokens(rng, 7 * scale, V), random_tokens(rng, 3 * scale, V)};
}

}  // namespace

TEST(finite_differences_every_parameter_causal_lm) {
  sppo_test::Rng rng(11);
  // llama3 (GQA, llama3 rope, tied embeddings) and llama2 (separate lm_head) styles.
  for (auto c : {llama3_tiny(), llama2_tiny()}) {
    LlamaEngine<double> e(c);
    randomize(e.params(), rng);
    Batch b = pad(seqs_for(rng, c.vocab_size), {3, 4, 2}, true);
    std::vector<double> wgt(b.B);
    for (auto& x : wgt) x = rng.normal();
    auto f = [&] {
      std::vector<double> s(b.B);
      e.sequence_logprobs(b.view(), s.data(), nullptr);
      double v = 0;
      for (int64_t i = 0; i < b.B; ++i) v += wgt[i] * s[i];
      return v;
    };
    e.zero_grad();
    e.sequence_logprobs_train(b.view(), nullptr, [&](const double*, double* g) {
      for (int64_t i = 0; i < b.B; ++i) g[i] = wgt[i];
    });
    fd_check(e, rng, f);
  }
}

TEST(finite_differences_every_parameter_reward_model) {
  sppo_test::Rng rng(12);
  auto c = reward_tiny();
  LlamaEngine<double> e(c);
  randomize(e.params(), rng);
  Batch b = pad(seqs_for(rng, c.vocab_size), {0, 0, 0}, false, 1);
  std::vector<double> ds(b.B * c.num_labels);
  for (auto& x : ds) x = rng.normal();
  auto f = [&] {
    std::vector<double> s(ds.size());
    e.scores(b.view(), s.data());
    double v = 0;
    for (size_t i = 0; i < s.size(); ++i) v += ds[i] * s[i];
    return v;
  };
  e.zero_grad();
  e.scores_backward(b.view(), ds.data());
  fd_check(e, rng, f);
}

TEST(fp32_model_gradients_match_float64_engine) {
  sppo_test::Rng rng(13);
  for (auto c : {llama3_tiny(), linear_tiny(), medium()}) {
    LlamaEngine<double> de(c);
    const bool big = c.vocab_size == medium().vocab_size;
    randomize(de.params(), rng, big ? 0.15 : 0.3);
    LlamaEngine<float> fe(c);
    copy_weights(de, fe);
    LlamaModel m(c);
    copy_weights(fe, m);
    Batch b = pad(seqs_for(rng, c.vocab_size, big ? 8 : 1), {4, big ? 40 : 6, 2}, false, 2);
    std::vector<float> gf(b.B);
    std::vector<double> gd(b.B);
    for (int64_t i = 0; i < b.B; ++i) gd[i] = gf[i] = static_cast<float>(rng.normal());
    const float scale = static_cast<float>(rng.uniform(0.2, 2.0));
    m.zero_grad();
    m.sequence_logprobs_backward(b.view(), gf.data(), scale);
    m.sequence_logprobs_backward(b.view(), gf.data(), scale);  // gradients accumulate
    de.zero_grad();
    de.sequence_logprobs_train(b.view(), nullptr, [&](const double*, double* g) {
      for (int64_t i = 0; i < b.B; ++i) g[i] = 2 * gd[i] * static_cast<double>(scale);
    });
    for (size_t k = 0; k < de.params().size(); ++k) {
      auto& pd = de.params()[k];
      auto& pf = m.params()[k];
      CHECK(pd.name == pf.name);
      double num = 0, den = 0;
      for (size_t j = 0; j < pd.grad.size(); ++j) {
        num = std::max(num, std::fabs(pf.grad[j] - pd.grad[j]));
        den = std::max(den, std::fabs(pd.grad[j]));
      }
      if (!(num <= 1e-4 * den)) std::printf("  %s: max-norm rel err %.2e\n", pd.name.c_str(), num / den);
      CHECK(den > 0);
      CHECK(num <= 1e-4 * den);
    }
  }
}

TEST(gradient_checkpointing_gives_identical_gradients) {
  sppo_test::Rng rng(14);
  auto c = medium();
  c.num_layers = 3;
  LlamaModel m(c);
  m.init_random(static_cast<uint64_t>(rng.integer(0, 1 << 30)), 0.15);
  Batch b = pad(seqs_for(rng, c.vocab_size, 8), {3, 50, 1}, true);
  std::vector<float> g(b.B);
  for (auto& x : g) x = static_cast<float>(rng.normal());
  std::vector<std::vector<float>> off;
  m.zero_grad();
  m.sequence_logprobs_backward(b.view(), g.data(), 0.5f);
  for (auto& p : m.params()) off.emplace_back(p.grad.begin(), p.grad.end());
  m.set_gradient_checkpointing(true);
  m.zero_grad();
  m.sequence_logprobs_backward(b.view(), g.data(), 0.5f);
  for (size_t k = 0; k < off.size(); ++k) {
    auto& p = m.params()[k];
    bool same = std::equal(off[k].begin(), off[k].end(), p.grad.begin());
    if (!same) std::printf("  %s differs with checkpointing\n", p.name.c_str());
    CHECK(same);
  }
}

TEST(gradients_do_not_depend_on_the_thread_count) {
#ifdef _OPENMP
  sppo_test::Rng rng(17);
  auto c = medium();
  LlamaModel m(c);
  m.init_random(static_cast<uint64_t>(rng.integer(0, 1 << 30)), 0.15);
  Batch b = pad(seqs_for(rng, c.vocab_size, 8), {20, 30, 10}, false);
  std::vector<float> g = {0.3f, -1.0f, 0.7f};
  const int saved = omp_get_max_threads();
  std::vector<std::vector<float>> by_threads[2];
  for (int k = 0; k < 2; ++k) {
    omp_set_num_threads(k == 0 ? 1 : std::max(2, saved));
    m.zero_grad();
    m.sequence_logprobs_backward(b.view(), g.data(), 1.0f);
    for (auto& p : m.params()) by_threads[k].emplace_back(p.grad.begin(), p.grad.end());
  }
  omp_set_num_threads(saved);
  CHECK(by_threads[0] == by_threads[1]);
#else
  std::printf("  skipped: built without OpenMP, so there is one thread only\n");
#endif
}

TEST(left_and_right_padding_give_the_same_gradients) {
  sppo_test::Rng rng(15);
  auto c = llama3_tiny();
  LlamaModel m(c);
  m.init_random(static_cast<uint64_t>(rng.integer(0, 1 << 30)), 0.3);
  auto seqs = seqs_for(rng, c.vocab_size);
  std::vector<float> g = {1.0f, -0.5f, 2.0f};
  std::vector<std::vector<float>> left;
  m.zero_grad();
  m.sequence_logprobs_backward(pad(seqs, {2, 6, 2}, true).view(), g.data(), 1.0f);
  for (auto& p : m.params()) left.emplace_back(p.grad.begin(), p.grad.end());
  m.zero_grad();
  m.sequence_logprobs_backward(pad(seqs, {2, 6, 2}, false, 3, 7).view(), g.data(), 1.0f);
  for (size_t k = 0; k < left.size(); ++k) {
    auto& p = m.params()[k];
    for (int64_t j = 0; j < p.numel(); ++j) CHECK_CLOSE(p.grad[j], left[k][j], 1e-5, 1e-4);
  }
}

TEST(sppo_loss_step_matches_loss_gradient_chain_rule) {
  sppo_test::Rng rng(16);
  auto c = llama3_tiny();
  LlamaModel m(c);
  m.init_random(static_cast<uint64_t>(rng.integer(0, 1 << 30)), 0.3);
  auto cs = seqs_for(rng, c.vocab_size);
  std::vector<std::vector<int32_t>> rs = {random_tokens(rng, 8, c.vocab_size), random_tokens(rng, 2, c.vocab_size),
                                          random_tokens(rng, 4, c.vocab_size)};
  Batch bc = pad(cs, {3, 5, 2}, true), br = pad(rs, {6, 1, 3}, false);
  std::vector<float> refc(3), refr(3), pw(3), pl(3), pwl(3);
  for (int i = 0; i < 3; ++i) {
    refc[i] = static_cast<float>(rng.uniform(-20, -5));
    refr[i] = static_cast<float>(rng.uniform(-20, -5));
    pw[i] = static_cast<float>(rng.uniform(0.5, 1));
    pl[i] = static_cast<float>(rng.uniform(0, 0.5));
    pwl[i] = static_cast<float>(rng.uniform(0, 1));
  }
  sppo::PairBatch pb{bc.view(), br.view(), refc.data(), refr.data(), pwl.data(), pw.data(), pl.data()};
  const double beta = 0.1;
  const float scale = 0.25f;
  m.zero_grad();
  sppo::StepMetrics sm = m.loss_and_backward(pb, sppo::LossType::SPPO, beta, scale);
  std::vector<std::vector<float>> got;
  for (auto& p : m.params()) got.emplace_back(p.grad.begin(), p.grad.end());
  // Same thing by hand: log-probs, the loss kernel, then sequence_logprobs_backward per side.
  std::vector<float> sc(3), sr(3), losses(3), gc(3), gr(3);
  m.sequence_logprobs(bc.view(), sc.data());
  m.sequence_logprobs(br.view(), sr.data());
  sppo::LossInputs in;
  in.B = 3;
  in.policy_chosen = sc.data();
  in.policy_rejected = sr.data();
  in.ref_chosen = refc.data();
  in.ref_rejected = refr.data();
  in.chosen_probs = pwl.data();
  in.chosen_probs_win = pw.data();
  in.chosen_probs_lose = pl.data();
  in.beta = beta;
  in.type = sppo::LossType::SPPO;
  auto summary = sppo::cpu::sppo_loss(in, sppo::LossOutputs{losses.data(), gc.data(), gr.data(), nullptr, nullptr});
  CHECK_CLOSE(sm.summary.loss, summary.loss, 1e-6, 1e-5);
  double mc = 0;
  for (float x : sc) mc += x / 3;
  CHECK_CLOSE(sm.policy_chosen_logp, mc, 1e-5, 1e-5);
  CHECK(sm.tokens == 5 + 7 + 3 + 8 + 2 + 4);
  m.zero_grad();
  m.sequence_logprobs_backward(bc.view(), gc.data(), scale);
  m.sequence_logprobs_backward(br.view(), gr.data(), scale);
  double worst = 0, den = 0;
  for (size_t k = 0; k < got.size(); ++k) {
    auto& p = m.params()[k];
    for (int64_t j = 0; j < p.numel(); ++j) {
      worst = std::max(worst, double(std::fabs(p.grad[j] - got[k][j])));
      den = std::max(den, std::fabs(double(p.grad[j])));
    }
  }
  CHECK(den > 0);
  CHECK(worst <= 1e-5 * den);
  // Mismatched pair counts are refused.
  Batch b2 = pad({cs[0], cs[1]}, {2, 2}, true);
  sppo::PairBatch bad{b2.view(), br.view(), refc.data(), refr.data(), pwl.data(), pw.data(), pl.data()};
  CHECK_THROWS_WITH(m.loss_and_backward(bad, sppo::LossType::SPPO, beta, 1.0f), "rejected has 3");
}

TEST_MAIN()
