// Continuous batching (model/scheduler.h): every (prompt, sample)'s tokens and log-probabilities
// are bitwise the same whatever the budgets (one prompt at a time, joins mid-run, all at once, the
// static drain-the-batch reference), the prompt order and the batch mix, and equal to decoding
// without a cache (greedy: a left- and a right-padded full forward; sampled: a full forward per
// step); pool accounting (peak within the budget, every block back at the end); shared prompt
// blocks never written by a sample; newcomers join while others run; budget errors name the option.
#include <algorithm>
#include <cstring>
#include <map>

#include "kernels/sample.h"
#include "model/kv_cache.h"
#include "model/scheduler.h"
#include "scheduler_testing.h"
#include "test_model_common.h"

using namespace model_test;
using sppo::GenerateOptions;
using sppo::GenerateStats;
using sppo::Generation;
using LlamaModel = model_test::Engine<float>;

namespace {

using Prompts = std::vector<std::vector<int32_t>>;

std::unique_ptr<LlamaModel> make_model(sppo_test::Rng& rng, const sppo::LlamaConfig& c) {
  auto m = std::make_unique<LlamaModel>(c);
  m->init_random(static_cast<uint64_t>(rng.integer(0, 1 << 30)), 0.5);
  return m;
}

// Lengths around the 16-position blocks: partial last blocks, exact multiples, one token.
Prompts make_prompts(sppo_test::Rng& rng, int64_t V) {
  Prompts p;
  for (int64_t len : {int64_t{21}, int64_t{16}, int64_t{1}, int64_t{7}, int64_t{32},
                      static_cast<int64_t>(rng.integer(2, 40)), static_cast<int64_t>(rng.integer(2, 40))})
    p.push_back(random_tokens(rng, len, V));
  return p;
}

std::vector<uint64_t> make_seeds(sppo_test::Rng& rng, size_t n) {
  std::vector<uint64_t> s;
  for (size_t i = 0; i < n; ++i) s.push_back(static_cast<uint64_t>(rng.integer(0, 1 << 30)));
  return s;
}

bool same(const Generation& a, const Generation& b) {
  return a.tokens == b.tokens && a.stopped_at_eos == b.stopped_at_eos && a.logprobs.size() == b.logprobs.size() &&
         (a.logprobs.empty() ||
          std::memcmp(a.logprobs.data(), b.logprobs.data(), a.logprobs.size() * sizeof(float)) == 0);
}

struct Budget {
  const char* name;
  int64_t batch_tokens, running, cache_tokens;
  bool drain;
  int64_t swap_tokens = -1;  // -1 automatic: on-demand admission, preemption by swapping
};

GenerateOptions with(GenerateOptions o, const Budget& b) {
  o.max_batch_tokens = b.batch_tokens;
  o.max_running_sequences = b.running;
  o.max_cache_tokens = b.cache_tokens;
  o.drain_batch = b.drain;
  o.max_swap_tokens = b.swap_tokens;
  return o;
}

int64_t longest(const Prompts& p) {
  int64_t n = 0;
  for (auto& x : p) n = std::max<int64_t>(n, static_cast<int64_t>(x.size()));
  return n;
}

// The largest KV need of one prompt with its K samples, in positions.
int64_t biggest_need(const Prompts& p, int64_t K, int64_t max_new) {
  int64_t n = 0;
  for (auto& x : p)
    n = std::max(n, sppo::KVCache::blocks_needed({static_cast<int64_t>(x.size())}, K, max_new, 16) * 16);
  return n;
}

// Budgets from one prompt at a time to everything at once.
std::vector<Budget> budgets(const Prompts& p, int64_t K, int64_t max_new) {
  const int64_t L = longest(p);
  return {
      {"one prompt at a time", std::max(L, K), K, 0, false},
      {"joins mid-run", L + 2 * K, 2 * K + 1, 0, false},
      {"tight KV memory", 0, 0, biggest_need(p, K, max_new) + 16, false},
      {"tight KV, worst case", 0, 0, biggest_need(p, K, max_new) + 16, false, 0},
      {"tight KV, little swap", 0, 0, biggest_need(p, K, max_new) + 16, false, biggest_need(p, K, max_new) + 32},
      {"static batches (drain)", L + 2 * K, 2 * K + 1, 0, true},
      {"automatic", 0, 0, 0, false},
  };
}

// Sampled reference without a cache: the full forward over the prompt and the tokens so far,
// then the same weights and pick from Philox(seed, k, step).
Generation uncached_sample(LlamaModel& m, const std::vector<int32_t>& prompt, uint64_t seed, uint64_t k,
                           const GenerateOptions& o) {
  const int64_t V = m.config().vocab_size;
  std::vector<int32_t> seq = prompt;
  Generation g;
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    Batch b = pad({seq}, {0}, false);
    std::vector<float> lg(b.T * V);
    m.logits(b.view(), lg.data());
    std::vector<float> w(V);
    sppo::cpu::sample_weights(lg.data() + (seq.size() - 1) * V, 1, V, o.temperature, w.data());
    const sppo::SampleStream st{seed, k, static_cast<uint64_t>(step)};
    int32_t t;
    float lp;
    sppo::cpu::sample_pick(w.data(), 1, V, o.top_k, o.top_p, &st, &t, &lp);
    g.tokens.push_back(t);
    g.logprobs.push_back(lp);
    seq.push_back(t);
    g.stopped_at_eos = std::find(o.eos_ids.begin(), o.eos_ids.end(), t) != o.eos_ids.end();
    if (g.stopped_at_eos) break;
  }
  return g;
}

// Greedy reference without a cache: all unfinished prompts in one padded batch (left or right
// padding), the argmax of each one's last real position, step by step.
std::vector<std::vector<int32_t>> padded_greedy(LlamaModel& m, const Prompts& prompts, const GenerateOptions& o,
                                                bool left) {
  const int64_t V = m.config().vocab_size;
  std::vector<std::vector<int32_t>> seqs(prompts.begin(), prompts.end()), out(prompts.size());
  std::vector<uint8_t> done(prompts.size(), 0);
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    std::vector<size_t> idx;
    Prompts batch;
    for (size_t i = 0; i < seqs.size(); ++i)
      if (!done[i]) idx.push_back(i), batch.push_back(seqs[i]);
    if (idx.empty()) break;
    Batch b = pad(batch, std::vector<int64_t>(batch.size(), 0), left);
    std::vector<float> lg(b.B * b.T * V);
    m.logits(b.view(), lg.data());
    for (size_t r = 0; r < idx.size(); ++r) {
      const int64_t last = b.start[r] + static_cast<int64_t>(batch[r].size()) - 1;
      const float* row = lg.data() + (static_cast<int64_t>(r) * b.T + last) * V;
      const int32_t t = static_cast<int32_t>(std::max_element(row, row + V) - row);
      out[idx[r]].push_back(t);
      seqs[idx[r]].push_back(t);
      if (std::find(o.eos_ids.begin(), o.eos_ids.end(), t) != o.eos_ids.end()) done[idx[r]] = 1;
    }
  }
  return out;
}

// Runs every budget and checks each against `ref` bit for bit; returns the stats per budget.
std::map<std::string, GenerateStats> check_budgets(LlamaModel& m, const Prompts& prompts,
                                                   const std::vector<uint64_t>& seeds, const GenerateOptions& o,
                                                   int64_t K, const std::vector<Generation>& ref) {
  std::map<std::string, GenerateStats> stats;
  for (const Budget& b : budgets(prompts, K, o.max_new_tokens)) {
    GenerateStats st;
    auto gen = sppo::generate(m.model(), prompts, K, seeds, with(o, b), &st);
    CHECK(gen.size() == ref.size());
    bool all = true;
    for (size_t s = 0; s < gen.size(); ++s) all = all && same(gen[s], ref[s]);
    if (!all) std::printf("  budget '%s' changed a generation\n", b.name);
    CHECK(all);
    std::printf("  %-24s steps %3lld mixed %3lld joins %2lld peak running %2lld peak rows %3lld peak blocks %3lld/%lld"
                " swapped out %lld (peak %lld/%lld blocks) resumed %lld\n",
                b.name, (long long)st.steps, (long long)st.mixed_steps, (long long)st.joins_while_running,
                (long long)st.peak_running, (long long)st.peak_step_tokens, (long long)st.peak_blocks_in_use,
                (long long)st.kv_blocks, (long long)st.preemptions, (long long)st.peak_swapped_blocks,
                (long long)st.swap_blocks, (long long)st.swap_ins);
    CHECK(st.peak_running <= st.max_running_sequences);
    CHECK(st.peak_step_tokens <= st.max_batch_tokens);
    CHECK(st.peak_blocks_in_use <= st.kv_blocks);
    CHECK(st.peak_swapped_blocks <= st.swap_blocks);  // the host memory bound
    CHECK(st.swap_ins == st.preemptions);             // every swapped prompt came back
    if (b.swap_tokens == 0 || b.drain) CHECK(st.swap_blocks == 0 && st.preemptions == 0);
    CHECK(st.free_blocks_at_end == st.kv_blocks);  // every block went back to the pool
    stats[b.name] = st;
  }
  return stats;
}

// Samples that stop early at different steps: several EOS ids out of the vocabulary.
std::vector<int32_t> some_eos(sppo_test::Rng& rng, int64_t V, int count) {
  std::vector<int32_t> e;
  while (static_cast<int>(e.size()) < count) {
    const int32_t t = static_cast<int32_t>(rng.integer(0, V - 1));
    if (std::find(e.begin(), e.end(), t) == e.end()) e.push_back(t);
  }
  return e;
}

}  // namespace

TEST(sampled_generations_do_not_depend_on_budget_order_or_mix) {
  sppo_test::Rng rng(41);  // fresh each run (the run seed is printed)
  auto c = medium();  // multi-threaded matmul tiles and attention tasks
  auto m = make_model(rng, c);
  const Prompts prompts = make_prompts(rng, c.vocab_size);
  const auto seeds = make_seeds(rng, prompts.size());
  GenerateOptions o;
  o.temperature = rng.uniform(0.7, 1.2);
  o.top_p = 0.95;
  o.max_new_tokens = 20;
  o.eos_ids = some_eos(rng, c.vocab_size, 24);  // about 8% a step: most samples stop early
  const int64_t K = 3;
  // The reference: each (prompt, sample) decoded alone without a cache.
  std::vector<Generation> ref;
  for (size_t i = 0; i < prompts.size(); ++i)
    for (int64_t k = 0; k < K; ++k) ref.push_back(uncached_sample(*m, prompts[i], seeds[i], static_cast<uint64_t>(k), o));
  int64_t early = 0;
  for (auto& g : ref) early += g.stopped_at_eos;
  std::printf("  %lld of %zu samples stop at EOS\n", (long long)early, ref.size());
  auto stats = check_budgets(*m, prompts, seeds, o, K, ref);
  // One prompt at a time: never more than its K samples; the drain reference never joins a
  // running set; with room for two prompts and early stops, newcomers join while others run,
  // their prefill in the same decode call, and in fewer steps than the drained batches.
  CHECK(stats["one prompt at a time"].peak_running <= K);
  CHECK(stats["static batches (drain)"].joins_while_running == 0);
  CHECK(stats["static batches (drain)"].mixed_steps == 0);
  CHECK(stats["joins mid-run"].joins_while_running > 0);
  CHECK(stats["joins mid-run"].mixed_steps > 0);
  CHECK(stats["joins mid-run"].steps <= stats["static batches (drain)"].steps);
  CHECK(stats["automatic"].peak_running == static_cast<int64_t>(prompts.size()) * K);
  // Another order and another mix: the same generations for the same (prompt, seed, k).
  std::vector<size_t> order(prompts.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::reverse(order.begin(), order.end());
  std::swap(order[1], order[3]);
  for (const std::vector<size_t>& pick : {order, std::vector<size_t>{4, 0}, std::vector<size_t>{2}}) {
    Prompts p;
    std::vector<uint64_t> s;
    std::vector<Generation> r;
    for (size_t i : pick) {
      p.push_back(prompts[i]);
      s.push_back(seeds[i]);
      for (int64_t k = 0; k < K; ++k) r.push_back(ref[i * K + static_cast<size_t>(k)]);
    }
    check_budgets(*m, p, s, o, K, r);
  }
}

TEST(greedy_generations_equal_left_and_right_padded_forward_for_any_budget) {
  sppo_test::Rng rng(42);  // fresh each run (the run seed is printed)
  for (auto c : {medium(), llama2_tiny()}) {
    auto m = make_model(rng, c);
    const Prompts prompts = make_prompts(rng, c.vocab_size);
    const auto seeds = make_seeds(rng, prompts.size());
    GenerateOptions o;
    o.greedy = true;
    o.max_new_tokens = 16;
    // EOS ids taken from the first generations, so that prompts stop at different steps.
    auto first = sppo::generate(m->model(), prompts, 1, seeds, o);
    for (size_t i = 0; i < prompts.size(); i += 2) o.eos_ids.push_back(first[i].tokens[2 + i]);
    auto left = padded_greedy(*m, prompts, o, true), right = padded_greedy(*m, prompts, o, false);
    const int64_t K = 2;  // greedy samples of a prompt are equal; the scheduler still runs K
    std::vector<Generation> ref;
    for (size_t i = 0; i < prompts.size(); ++i) {
      CHECK(left[i] == right[i]);
      Generation g;
      g.tokens = left[i];
      g.logprobs.assign(g.tokens.size(), 0.f);
      g.stopped_at_eos = std::find(o.eos_ids.begin(), o.eos_ids.end(), g.tokens.back()) != o.eos_ids.end();
      for (int64_t k = 0; k < K; ++k) ref.push_back(g);
    }
    auto stats = check_budgets(*m, prompts, seeds, o, K, ref);
    CHECK(stats["joins mid-run"].joins_while_running > 0);
  }
}

TEST(shared_prompt_blocks_are_never_written_and_blocks_return) {
  sppo_test::Rng rng(43);  // fresh each run (the run seed is printed)
  auto c = llama3_tiny();
  auto m = make_model(rng, c);
  const Prompts prompts = make_prompts(rng, c.vocab_size);
  const auto seeds = make_seeds(rng, prompts.size());
  GenerateOptions o;
  o.temperature = 1.0;
  o.max_new_tokens = 24;
  o.eos_ids = some_eos(rng, c.vocab_size, 3);
  o.max_batch_tokens = longest(prompts) + 8;
  o.max_running_sequences = 9;
  const int64_t K = 4;
  sppo::Backend& be = m->model().backend();
  // Checksum of every K and V row of a block, over all layers.
  auto checksum = [&](const sppo::KVCache& cache, int32_t block) {
    const int64_t row = c.num_kv_heads * c.head_dim, bs = cache.block_size();
    std::vector<float> buf(static_cast<size_t>(bs * row));
    uint64_t h = 1469598103934665603ull;
    for (int64_t l = 0; l < c.num_layers; ++l)
      for (const sppo::Tensor& pool : {cache.k_pool(l), cache.v_pool(l)}) {
        be.download(buf.data(), static_cast<const float*>(pool.data) + block * bs * row, buf.size() * sizeof(float));
        const auto* bytes = reinterpret_cast<const unsigned char*>(buf.data());
        for (size_t i = 0; i < buf.size() * sizeof(float); ++i) h = (h ^ bytes[i]) * 1099511628211ull;
      }
    return h;
  };
  std::map<int, std::vector<std::pair<int32_t, uint64_t>>> seen;  // prompt sequence -> its blocks' checksums
  int64_t checked = 0, partial = 0, steps = 0;
  // A prompt swapped out and back keeps its blocks' bytes (checksums in prompt order).
  std::map<std::vector<uint64_t>, int> prompt_sums;
  const sppo::StepHook hook = [&](const sppo::KVCache& cache, const std::vector<int>& prompt_seqs) {
    ++steps;
    for (auto it = seen.begin(); it != seen.end();)  // closed prompts leave; their ids may be reused
      it = std::find(prompt_seqs.begin(), prompt_seqs.end(), it->first) == prompt_seqs.end() ? seen.erase(it) : ++it;
    for (int s : prompt_seqs) {
      auto& rec = seen[s];
      const auto blocks = cache.blocks_of(s);
      if (rec.empty()) {
        std::vector<uint64_t> sums;
        for (int32_t b : blocks) rec.emplace_back(b, checksum(cache, b)), sums.push_back(rec.back().second);
        partial += cache.length(s) % cache.block_size() != 0;
        ++prompt_sums[sums];
        continue;
      }
      CHECK(blocks.size() == rec.size());
      for (size_t j = 0; j < rec.size() && j < blocks.size(); ++j) {
        CHECK(blocks[j] == rec[j].first);
        CHECK(checksum(cache, rec[j].first) == rec[j].second);
        ++checked;
      }
    }
  };
  GenerateStats st;
  const auto gen = sppo_test::generate_assuming(m->model(), prompts, K, seeds, o, 1.0, &st, &hook);  // generate()'s policy
  std::printf("  %lld block checks over %lld steps, %lld prompts with a partial last block\n", (long long)checked,
              (long long)steps, (long long)partial);
  CHECK(checked > 0 && partial >= 3);
  CHECK(st.joins_while_running > 0);
  CHECK(st.peak_blocks_in_use <= st.kv_blocks);
  CHECK(st.free_blocks_at_end == st.kv_blocks);
  // The same generations as with everything at once.
  GenerateOptions all = o;
  all.max_batch_tokens = all.max_running_sequences = 0;
  auto ref = sppo::generate(m->model(), prompts, K, seeds, all);
  for (size_t s = 0; s < gen.size(); ++s) CHECK(same(gen[s], ref[s]));
  // A memory budget of one prompt: never more blocks than it, and all back at the end.
  GenerateOptions tight = all;
  tight.max_cache_tokens = biggest_need(prompts, K, o.max_new_tokens);
  GenerateStats ts;
  auto one = sppo::generate(m->model(), prompts, K, seeds, tight, &ts);
  CHECK(ts.kv_blocks * 16 == tight.max_cache_tokens);
  CHECK(ts.peak_blocks_in_use <= ts.kv_blocks && ts.free_blocks_at_end == ts.kv_blocks);
  for (size_t s = 0; s < gen.size(); ++s) CHECK(same(one[s], ref[s]));
  // Preemption: a pool of two blocks more than the largest prompt needs, with swap space. Every
  // prompt swapped out comes back with its prompt blocks' bytes (seen again with the same
  // checksums under new sequence ids), which its samples still never write.
  GenerateOptions swapping = all;
  swapping.max_cache_tokens = biggest_need(prompts, K, o.max_new_tokens) + 32;
  swapping.eos_ids.clear();  // every sample runs to max_new_tokens: the pool fills
  seen.clear();
  prompt_sums.clear();
  checked = steps = 0;
  GenerateStats ss;
  // Overcommitting the pool from the first step (then by the finished prompts' use: all of it).
  const auto swapped = sppo_test::generate_assuming(m->model(), prompts, K, seeds, swapping, 0.25, &ss, &hook);
  int64_t again = 0;  // prompts seen twice with the same bytes: once before, once after a swap
  for (const auto& [sums, count] : prompt_sums) again += count - 1;
  std::printf("  swapping: %lld preemptions, %lld resumed with the same prompt bytes, %lld block checks, "
              "peak %lld of %lld swap blocks\n", (long long)ss.preemptions, (long long)again, (long long)checked,
              (long long)ss.peak_swapped_blocks, (long long)ss.swap_blocks);
  CHECK(ss.preemptions >= 1 && ss.swap_ins == ss.preemptions);
  CHECK(again == ss.preemptions);
  CHECK(checked > 0);
  CHECK(ss.peak_swapped_blocks <= ss.swap_blocks && ss.free_blocks_at_end == ss.kv_blocks);
  GenerateOptions no_eos = all;
  no_eos.eos_ids.clear();
  const auto ref_swap = sppo::generate(m->model(), prompts, K, seeds, no_eos);
  for (size_t s = 0; s < swapped.size(); ++s) CHECK(same(swapped[s], ref_swap[s]));
  // generate()'s own policy on the same pool: samples that all run to max_new_tokens use their
  // worst case, so it keeps to it and never preempts.
  GenerateStats own;
  const auto policy = sppo::generate(m->model(), prompts, K, seeds, swapping, &own);
  CHECK(own.preemptions == 0);
  for (size_t s = 0; s < gen.size(); ++s) CHECK(same(policy[s], ref_swap[s]));
  // The same pool reserving every prompt's worst case (no swap space): the same bits, fewer
  // samples at once and more steps than overcommitting.
  GenerateOptions reserving = swapping;
  reserving.max_swap_tokens = 0;
  GenerateStats rs;
  const auto worst = sppo::generate(m->model(), prompts, K, seeds, reserving, &rs);
  std::printf("  the same pool: %lld samples at once and %lld steps on demand, %lld and %lld reserving the worst case\n",
              (long long)ss.peak_running, (long long)ss.steps, (long long)rs.peak_running, (long long)rs.steps);
  CHECK(rs.preemptions == 0 && rs.swap_blocks == 0);
  CHECK(ss.peak_running > rs.peak_running && ss.steps < rs.steps);
  for (size_t s = 0; s < gen.size(); ++s) CHECK(same(worst[s], ref_swap[s]));
}

// generate()'s on-demand policy: once prompts finish having used a fraction of their worst case,
// admission overcommits the pool by that ratio. Responses that stop early (a quarter of the
// vocabulary is EOS: about 4 tokens a sample of at most 48) let several prompts into a pool that
// holds one prompt's worst case, with the same bits as reserving the worst case.
TEST(short_responses_let_more_prompts_in_than_their_worst_case) {
  sppo_test::Rng rng(44);  // fresh each run (the run seed is printed)
  auto c = llama3_tiny();
  auto m = make_model(rng, c);
  Prompts prompts;
  for (int i = 0; i < 12; ++i) prompts.push_back(random_tokens(rng, rng.integer(1, 30), c.vocab_size));
  const auto seeds = make_seeds(rng, prompts.size());
  GenerateOptions o;
  o.temperature = 1.0;
  o.max_new_tokens = 48;
  o.eos_ids = some_eos(rng, c.vocab_size, static_cast<int>(c.vocab_size / 4));
  const int64_t K = 3;
  o.max_cache_tokens = biggest_need(prompts, K, o.max_new_tokens) + 32;
  GenerateStats demand, worst;
  const auto a = sppo::generate(m->model(), prompts, K, seeds, o, &demand);
  GenerateOptions w = o;
  w.max_swap_tokens = 0;
  const auto b = sppo::generate(m->model(), prompts, K, seeds, w, &worst);
  int64_t tokens = 0;
  for (auto& g : a) tokens += static_cast<int64_t>(g.tokens.size());
  std::printf("  %lld tokens in %zu samples; on demand %lld at once, %lld steps, %lld preemptions; worst case %lld at "
              "once, %lld steps (pool %lld blocks)\n", (long long)tokens, a.size(), (long long)demand.peak_running,
              (long long)demand.steps, (long long)demand.preemptions, (long long)worst.peak_running,
              (long long)worst.steps, (long long)demand.kv_blocks);
  CHECK(demand.peak_running > worst.peak_running && demand.steps < worst.steps);
  CHECK(demand.peak_blocks_in_use <= demand.kv_blocks && demand.free_blocks_at_end == demand.kv_blocks);
  CHECK(a.size() == b.size());
  for (size_t s = 0; s < a.size() && s < b.size(); ++s) CHECK(same(a[s], b[s]));
}

TEST(budgets_too_small_for_one_prompt_are_refused_by_name) {
  sppo_test::Rng rng(31);
  auto c = llama3_tiny();
  auto m = make_model(rng, c);
  const Prompts prompts = {random_tokens(rng, 5, c.vocab_size), random_tokens(rng, 9, c.vocab_size)};
  GenerateOptions o;
  o.max_new_tokens = 24;
  auto gen = [&](const GenerateOptions& x, int64_t K) { return sppo::generate(m->model(), prompts, K, {1, 2}, x); };
  GenerateOptions a = o;
  a.max_batch_tokens = 8;
  CHECK_THROWS_WITH(gen(a, 1), "max_batch_tokens = 8 is smaller than prompt 1 (9 tokens)");
  a.max_batch_tokens = 12;
  CHECK_THROWS_WITH(gen(a, 13), "max_batch_tokens = 12 is smaller than the 13 samples");
  GenerateOptions b = o;
  b.max_running_sequences = 3;
  CHECK_THROWS_WITH(gen(b, 4), "max_running_sequences = 3 is smaller than the 4 samples");
  GenerateOptions d = o;
  d.max_cache_tokens = 40;  // prompt 1 (9 tokens) with 2 samples of 24 new tokens needs 1 + 2 * 3 = 7 blocks
  CHECK_THROWS_WITH(gen(d, 2), "max_cache_tokens = 40 (2 blocks of 16 positions) cannot hold prompt 1 (9 tokens)");
  CHECK_THROWS_WITH(gen(d, 2), "need 7 blocks (112 positions); raise max_cache_tokens to at least 112");
  d.max_cache_tokens = -1;
  CHECK_THROWS_WITH(gen(d, 1), "max_cache_tokens must be >= 0");
  d = o;
  d.max_batch_tokens = -2;
  CHECK_THROWS_WITH(gen(d, 1), "max_batch_tokens must be >= 0");
  d = o;
  d.max_running_sequences = -3;
  CHECK_THROWS_WITH(gen(d, 1), "max_running_sequences must be >= 0");
  d = o;
  d.max_cache_tokens = 112;  // exactly enough runs
  CHECK(gen(d, 2).size() == 4);
}

TEST(progress_reports_rising_finished_counts_ending_at_all_and_can_stop_the_call) {
  sppo_test::Rng rng(43);  // fresh each run (the run seed is printed)
  auto c = llama3_tiny();
  auto m = make_model(rng, c);
  const Prompts prompts = make_prompts(rng, c.vocab_size);
  const auto seeds = make_seeds(rng, prompts.size());
  GenerateOptions o;
  o.temperature = 1.0;
  o.max_new_tokens = 16;
  o.eos_ids = some_eos(rng, c.vocab_size, 24);
  o.max_batch_tokens = longest(prompts) + 6;  // prompts join as others finish
  const int64_t K = 3, n = static_cast<int64_t>(prompts.size()) * K;
  const auto ref = sppo::generate(m->model(), prompts, K, seeds, o);
  // The counts: rising, each one the generations finished by then, the last one all of them.
  std::vector<int64_t> counts;
  const sppo::GenerateProgress note = [&](int64_t finished) { counts.push_back(finished); };
  GenerateStats st;
  const auto gen = sppo::generate(m->model(), prompts, K, seeds, o, &st, &note);
  std::printf("  %zu reports over %lld steps\n", counts.size(), (long long)st.steps);
  CHECK(counts.size() > 2 && static_cast<int64_t>(counts.size()) <= st.steps);
  for (size_t i = 1; i < counts.size(); ++i) CHECK(counts[i] > counts[i - 1]);
  CHECK(!counts.empty() && counts.front() > 0 && counts.back() == n);
  for (size_t s = 0; s < gen.size(); ++s) CHECK(same(gen[s], ref[s]));  // reporting changes nothing
  // No new tokens: everything is finished at once, reported once.
  GenerateOptions none = o;
  none.max_new_tokens = 0;
  counts.clear();
  sppo::generate(m->model(), prompts, K, seeds, none, nullptr, &note);
  CHECK(counts.size() == 1 && counts[0] == n);
  // A report that throws ends the call with its exception.
  const sppo::GenerateProgress boom = [](int64_t) { throw sppo::Error("progress failed"); };
  CHECK_THROWS_WITH(sppo::generate(m->model(), prompts, K, seeds, o, nullptr, &boom), "progress failed");
  // Cancelling at the first report stops the call before its next step: no further report.
  sppo::CancelFlag flag;
  m->model().set_cancel(sppo::CancelPoint{&flag, flag.begin()});
  counts.clear();
  const sppo::GenerateProgress stop = [&](int64_t finished) {
    counts.push_back(finished);
    flag.cancel();
  };
  CHECK_THROWS_WITH(sppo::generate(m->model(), prompts, K, seeds, o, nullptr, &stop), "cancelled");
  CHECK(counts.size() == 1 && counts[0] < n);
  m->model().set_cancel(sppo::CancelPoint{});
}

// generate_each hands every prompt over exactly once, in the step its last sample finishes, with
// generate()'s bits; with a waiting queue it hands early prompts over while later ones still run
// (what lets a rollout write a shard while the next is generated).
TEST(generate_each_hands_each_prompt_over_once_as_it_finishes) {
  sppo_test::Rng rng(47);  // fresh each run (the run seed is printed)
  auto c = llama3_tiny();
  auto m = make_model(rng, c);
  Prompts prompts = make_prompts(rng, c.vocab_size);
  for (int rep = 0; rep < 2; ++rep) {  // more prompts than the running set holds
    const Prompts more = make_prompts(rng, c.vocab_size);
    prompts.insert(prompts.end(), more.begin(), more.end());
  }
  const auto seeds = make_seeds(rng, prompts.size());
  GenerateOptions o;
  o.temperature = 1.0;
  o.top_p = 0.9;
  o.max_new_tokens = 12;
  o.eos_ids = some_eos(rng, c.vocab_size, 20);
  const int64_t K = 2, np = static_cast<int64_t>(prompts.size()), n = np * K;
  GenerateOptions at_once = o;  // the reference: every prompt running together
  const auto ref = sppo::generate(m->model(), prompts, K, seeds, at_once);
  o.max_running_sequences = 2 * K;  // two prompts at a time: the rest wait
  std::vector<int> seen(prompts.size(), 0);
  std::vector<int64_t> counts;
  int64_t handed = 0, before_last = 0;
  const sppo::GenerateReport report = [&](int64_t finished, std::vector<sppo::FinishedPrompt>& done) {
    counts.push_back(finished);
    for (auto& f : done) {
      CHECK(f.prompt >= 0 && f.prompt < np);
      if (f.prompt < 0 || f.prompt >= np) continue;
      ++seen[static_cast<size_t>(f.prompt)];
      CHECK(static_cast<int64_t>(f.samples.size()) == K);
      for (int64_t k = 0; k < K && k < static_cast<int64_t>(f.samples.size()); ++k)
        CHECK(same(f.samples[static_cast<size_t>(k)], ref[static_cast<size_t>(f.prompt * K + k)]));
      handed += K;
    }
    CHECK(handed <= finished);  // a prompt comes with its samples' count, never before
    if (finished < n) before_last = std::max<int64_t>(before_last, handed);
  };
  GenerateStats st;
  sppo::generate_each(m->model(), prompts, K, seeds, o, report, &st);
  std::printf("  %zu reports, %lld of %lld generations handed over before the last report\n", counts.size(),
              (long long)before_last, (long long)n);
  for (size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == 1);
  for (size_t i = 1; i < counts.size(); ++i) CHECK(counts[i] > counts[i - 1]);
  CHECK(!counts.empty() && counts.back() == n && handed == n);
  CHECK(before_last >= n / 2);  // most prompts are out long before the call ends
  CHECK(st.joins_while_running > 0);
  // No new tokens: every prompt at once, with K empty generations.
  GenerateOptions none = o;
  none.max_new_tokens = 0;
  std::fill(seen.begin(), seen.end(), 0);
  counts.clear();
  handed = 0;
  sppo::generate_each(m->model(), prompts, K, seeds, none, [&](int64_t finished, std::vector<sppo::FinishedPrompt>& done) {
    counts.push_back(finished);
    for (auto& f : done) {
      ++seen[static_cast<size_t>(f.prompt)];
      for (const auto& g : f.samples) CHECK(g.tokens.empty() && !g.stopped_at_eos);
    }
  });
  CHECK(counts.size() == 1 && counts[0] == n);
  for (size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == 1);
}

TEST_MAIN()
