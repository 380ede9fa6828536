// Generation tests: greedy decoding against the full forward pass, batch independence of
// seeded samples, top-k = 1 vs greedy, EOS and max_new_tokens, the sampling distribution
// (temperature, top-k, top-p) and sampling log-probabilities.
#include <algorithm>
#include <cmath>
#include <map>

#include "core/philox.h"
#include "kernels/sample.h"
#include "test_model_common.h"

using namespace model_test;
using sppo::GenerateOptions;
using LlamaModel = model_test::Engine<float>;

namespace {

std::vector<float> full_logits(LlamaModel& m, const std::vector<int32_t>& seq) {
  Batch b = pad({seq}, {0}, false);
  std::vector<float> lg(b.T * m.config().vocab_size);
  m.logits(b.view(), lg.data());
  return lg;
}

LlamaModel* make_model(sppo_test::Rng& rng, const sppo::LlamaConfig& c) {
  auto* m = new LlamaModel(c);
  m->init_random(static_cast<uint64_t>(rng.integer(0, 1 << 30)), 0.5);
  return m;
}

}  // namespace

TEST(greedy_generation_is_argmax_of_full_forward_each_step) {
  sppo_test::Rng rng(21);
  for (auto c : {llama3_tiny(), llama2_tiny()}) {
    std::unique_ptr<LlamaModel> m(make_model(rng, c));
    std::vector<std::vector<int32_t>> prompts = {random_tokens(rng, 3, c.vocab_size),
                                                 random_tokens(rng, 7, c.vocab_size),
                                                 random_tokens(rng, 1, c.vocab_size)};
    GenerateOptions o;
    o.greedy = true;
    o.max_new_tokens = 8;
    auto gen = m->generate(prompts, {1, 2, 3}, o);
    CHECK(gen.size() == 3);
    for (size_t i = 0; i < gen.size(); ++i) {
      CHECK(gen[i].tokens.size() == 8 && !gen[i].stopped_at_eos);
      std::vector<int32_t> seq = prompts[i];
      seq.insert(seq.end(), gen[i].tokens.begin(), gen[i].tokens.end());
      auto lg = full_logits(*m, seq);
      for (size_t k = 0; k < gen[i].tokens.size(); ++k) {
        const float* row = lg.data() + (prompts[i].size() - 1 + k) * c.vocab_size;
        const float best = *std::max_element(row, row + c.vocab_size);
        CHECK(row[gen[i].tokens[k]] >= best - 1e-5f);  // argmax up to float ties
        CHECK(gen[i].logprobs[k] == 0.0f);
      }
    }
  }
}

TEST(a_prompts_sample_does_not_depend_on_the_batch) {
  sppo_test::Rng rng(22);
  auto c = medium();  // large enough for multi-threaded matmul tiles
  std::unique_ptr<LlamaModel> m(make_model(rng, c));
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 4; ++i) prompts.push_back(random_tokens(rng, rng.integer(1, 40), c.vocab_size));
  std::vector<uint64_t> seeds;
  for (int i = 0; i < 4; ++i) seeds.push_back(static_cast<uint64_t>(rng.integer(0, 1 << 30)));
  GenerateOptions o;
  o.temperature = 0.9;
  o.top_p = 0.9;
  o.max_new_tokens = 12;
  o.eos_ids = {static_cast<int32_t>(rng.integer(0, c.vocab_size - 1))};
  auto all = m->generate(prompts, seeds, o);
  for (int i = 0; i < 4; ++i) {
    auto alone = m->generate({prompts[i]}, {seeds[i]}, o);
    CHECK(alone[0].tokens == all[i].tokens);
    CHECK(alone[0].logprobs == all[i].logprobs);
    CHECK(alone[0].stopped_at_eos == all[i].stopped_at_eos);
  }
  // A different seed gives a different sample (12 tokens over a 53-word vocabulary).
  auto other = m->generate({prompts[0]}, {seeds[0] + 1}, o);
  auto again = m->generate({prompts[0]}, {seeds[0]}, o);
  CHECK(again[0].tokens == all[0].tokens);
  CHECK(other[0].tokens != all[0].tokens || all[0].tokens.size() < 4);
}

TEST(top_k_one_equals_greedy_and_eos_stops) {
  sppo_test::Rng rng(23);
  auto c = llama3_tiny();
  std::unique_ptr<LlamaModel> m(make_model(rng, c));
  std::vector<std::vector<int32_t>> prompts = {random_tokens(rng, 4, c.vocab_size), random_tokens(rng, 2, c.vocab_size)};
  GenerateOptions g;
  g.greedy = true;
  g.max_new_tokens = 6;
  auto greedy = m->generate(prompts, {5, 6}, g);
  GenerateOptions k1;
  k1.temperature = 1.3;
  k1.top_k = 1;
  k1.max_new_tokens = 6;
  auto topk = m->generate(prompts, {7, 8}, k1);
  for (int i = 0; i < 2; ++i) {
    CHECK(topk[i].tokens == greedy[i].tokens);
    for (float lp : topk[i].logprobs) CHECK(lp == 0.0f);  // one candidate: probability 1
  }
  // EOS: the third greedy token of prompt 0 stops it there; the EOS is returned.
  GenerateOptions e = g;
  e.eos_ids = {greedy[0].tokens[2]};
  auto stopped = m->generate(prompts, {5, 6}, e);
  auto first = std::find(greedy[0].tokens.begin(), greedy[0].tokens.end(), greedy[0].tokens[2]);
  const size_t stop_len = static_cast<size_t>(first - greedy[0].tokens.begin()) + 1;
  CHECK(stopped[0].stopped_at_eos);
  CHECK(stopped[0].tokens.size() == stop_len);
  CHECK(std::equal(stopped[0].tokens.begin(), stopped[0].tokens.end(), greedy[0].tokens.begin()));
  // max_new_tokens bounds the other; zero new tokens gives empty generations.
  CHECK(stopped[1].tokens.size() <= 6);
  e.max_new_tokens = 0;
  auto none = m->generate(prompts, {5, 6}, e);
  CHECK(none[0].tokens.empty() && none[1].tokens.empty());
}

TEST(sampling_logprobs_follow_the_tempered_distribution) {
  sppo_test::Rng rng(24);
  auto c = llama2_tiny();
  std::unique_ptr<LlamaModel> m(make_model(rng, c));
  auto prompt = random_tokens(rng, 5, c.vocab_size);
  GenerateOptions o;
  o.temperature = rng.uniform(0.5, 1.5);
  o.max_new_tokens = 5;
  auto gen = m->generate({prompt}, {static_cast<uint64_t>(rng.integer(0, 1 << 30))}, o);
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), gen[0].tokens.begin(), gen[0].tokens.end());
  auto lg = full_logits(*m, seq);
  for (size_t k = 0; k < gen[0].tokens.size(); ++k) {
    const float* row = lg.data() + (prompt.size() - 1 + k) * c.vocab_size;
    double mx = -1e300, z = 0;
    for (int64_t v = 0; v < c.vocab_size; ++v) mx = std::max(mx, row[v] / o.temperature);
    for (int64_t v = 0; v < c.vocab_size; ++v) z += std::exp(row[v] / o.temperature - mx);
    const double expect = row[gen[0].tokens[k]] / o.temperature - mx - std::log(z);
    CHECK_CLOSE(gen[0].logprobs[k], expect, 1e-5, 1e-5);
  }
}

TEST(sampler_frequencies_match_top_k_top_p_distribution) {
  sppo_test::Rng rng(25);
  const int64_t V = 6;
  std::vector<float> logits(V);
  for (auto& x : logits) x = static_cast<float>(rng.normal(0, 1.5));
  const double temperature = rng.uniform(0.6, 1.4), top_p = rng.uniform(0.5, 0.95);
  const int64_t top_k = 4;
  // Expected distribution, computed the transformers way here: temperature, top-k, top-p.
  std::vector<double> z(V);
  for (int64_t v = 0; v < V; ++v) z[v] = logits[v] / temperature;
  std::vector<int64_t> order(V);
  for (int64_t v = 0; v < V; ++v) order[v] = v;
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return z[a] > z[b]; });
  std::vector<char> keep(V, 0);
  for (int64_t r = 0; r < top_k; ++r) keep[order[r]] = 1;
  double zk = 0;
  for (int64_t r = 0; r < top_k; ++r) zk += std::exp(z[order[r]]);
  double cum_desc = 0;  // keep the smallest top set whose mass reaches top_p
  for (int64_t r = 0; r < top_k; ++r) {
    if (cum_desc >= top_p) keep[order[r]] = 0;
    cum_desc += std::exp(z[order[r]]) / zk;
  }
  double zt = 0;
  for (int64_t v = 0; v < V; ++v)
    if (keep[v]) zt += std::exp(z[v]);
  // Many draws of one row from consecutive Philox steps of a fresh seed.
  const int draws = 40000;
  std::vector<float> w(V);
  sppo::cpu::sample_weights(logits.data(), 1, V, temperature, w.data());
  std::vector<int> count(V, 0);
  const uint64_t seed = static_cast<uint64_t>(rng.integer(0, 1 << 30));
  for (int i = 0; i < draws; ++i) {
    const sppo::SampleStream st{seed, 3, static_cast<uint64_t>(i)};
    int32_t t;
    float lp;
    sppo::cpu::sample_pick(w.data(), 1, V, top_k, top_p, &st, &t, &lp);
    CHECK(keep[t]);
    CHECK_CLOSE(lp, z[t] - std::log(zt), 1e-5, 1e-5);
    ++count[t];
  }
  // Pearson chi-square over the kept tokens against the truncated, tempered softmax: with at most
  // 3 degrees of freedom, 30 is beyond the 0.9999 quantile.
  double chi2 = 0;
  int dof = -1;
  for (int64_t v = 0; v < V; ++v) {
    if (!keep[v]) {
      CHECK(count[v] == 0);
      continue;
    }
    const double expect = draws * std::exp(z[v]) / zt;
    chi2 += (count[v] - expect) * (count[v] - expect) / expect;
    ++dof;
  }
  std::printf("  chi-square %.2f with %d degrees of freedom\n", chi2, dof);
  CHECK(chi2 < 30);
}

// Sample k of a prompt, recomputed without any cache: the full forward over the prompt and the
// tokens drawn so far, then the same weights and pick from Philox(seed, k, step).
static std::vector<int32_t> uncached_sample(LlamaModel& m, const std::vector<int32_t>& prompt, uint64_t seed, uint64_t k,
                                     const GenerateOptions& o) {
  const int64_t V = m.config().vocab_size;
  std::vector<int32_t> seq = prompt, out;
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    auto lg = full_logits(m, seq);
    const float* row = lg.data() + (seq.size() - 1) * V;
    std::vector<float> w(V);
    sppo::cpu::sample_weights(row, 1, V, o.temperature, w.data());
    const sppo::SampleStream st{seed, k, static_cast<uint64_t>(step)};
    int32_t t;
    float lp;
    sppo::cpu::sample_pick(w.data(), 1, V, o.top_k, o.top_p, &st, &t, &lp);
    out.push_back(t);
    seq.push_back(t);
    if (std::find(o.eos_ids.begin(), o.eos_ids.end(), t) != o.eos_ids.end()) break;
  }
  return out;
}

TEST(k_samples_sharing_one_prefill_equal_uncached_sampling) {
  sppo_test::Rng rng(27);
  for (auto c : {llama3_tiny(), llama2_tiny()}) {
    std::unique_ptr<LlamaModel> m(make_model(rng, c));
    // Prompts of 21 and 7 tokens: several cache blocks, and a partial block that the samples copy.
    std::vector<std::vector<int32_t>> prompts = {random_tokens(rng, 21, c.vocab_size), random_tokens(rng, 7, c.vocab_size)};
    std::vector<uint64_t> seeds = {static_cast<uint64_t>(rng.integer(0, 1 << 30)), static_cast<uint64_t>(rng.integer(0, 1 << 30))};
    GenerateOptions o;
    o.temperature = 0.9;
    o.top_p = 0.9;
    o.max_new_tokens = 12;
    o.eos_ids = {2};
    const int64_t K = 3;
    auto gen = m->generate(prompts, seeds, o, K);
    CHECK(gen.size() == prompts.size() * K);
    for (size_t i = 0; i < prompts.size(); ++i)
      for (int64_t k = 0; k < K; ++k) {
        const auto& g = gen[i * K + k];
        CHECK(g.tokens == uncached_sample(*m, prompts[i], seeds[i], static_cast<uint64_t>(k), o));
        CHECK(g.logprobs.size() == g.tokens.size());
      }
    // Asking for more samples, or adding a prompt, changes none of these.
    auto more = m->generate({prompts[1], prompts[0]}, {seeds[1], seeds[0]}, o, K + 2);
    for (int64_t k = 0; k < K; ++k) {
      CHECK(more[k].tokens == gen[K + k].tokens);
      CHECK(more[(K + 2) + k].tokens == gen[k].tokens);
    }
  }
}

TEST(generate_rejects_bad_arguments) {
  sppo_test::Rng rng(26);
  auto c = llama3_tiny();
  std::unique_ptr<LlamaModel> m(make_model(rng, c));
  GenerateOptions o;
  CHECK_THROWS_WITH(m->generate({{1, 2}}, {}, o), "1 prompts but 0 seeds");
  CHECK_THROWS_WITH(m->generate({{}}, {1}, o), "prompt 0 is empty");
  CHECK_THROWS_WITH(m->generate({{1, 99}}, {1}, o), "prompt 0 token 1");
  o.top_p = 0;
  CHECK_THROWS_WITH(m->generate({{1}}, {1}, o), "top_p");
  o = GenerateOptions();
  o.temperature = -1;
  CHECK_THROWS_WITH(m->generate({{1}}, {1}, o), "temperature");
  o = GenerateOptions();
  o.eos_ids = {1000};
  CHECK_THROWS_WITH(m->generate({{1}}, {1}, o), "eos_ids[0]");
  m->find("model.embed_tokens.weight")->data[0] = NAN;  // poisons the embedding of token 0
  CHECK_THROWS_WITH(m->generate({{0}}, {1}, GenerateOptions()), "non-finite logit");
  LlamaModel r(reward_tiny());
  CHECK_THROWS_WITH(r.generate({{1}}, {1}, GenerateOptions()), "sequence-classification");
}

TEST_MAIN()
