// Forward-pass tests of the Llama model against the independent float64 reference: logits,
// padding, sequence log-probabilities, reward scores, KV-cache decoding, and input errors.
#include <algorithm>
#include <cstring>
#include <cmath>

#include "model/kv_cache.h"
#include "model/rope_freq.h"
#include "test_model_common.h"

using namespace model_test;
template <typename T>
using LlamaEngine = model_test::Engine<T>;
using LlamaModel = model_test::Engine<float>;

namespace {

// max |a - b| / max |b| over the real positions of a padded batch vs per-sequence reference.
double logits_error(const sppo::LlamaConfig& c, const std::vector<float>& got, const Batch& b,
                    const std::vector<std::vector<int32_t>>& seqs, const llama_ref::Weights& w) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < b.B; ++i) {
    auto ref = llama_ref::logits(c, w, seqs[i]);
    for (size_t t = 0; t < seqs[i].size(); ++t)
      for (int64_t v = 0; v < c.vocab_size; ++v) {
        const double g = got[((i * b.T) + b.start[i] + t) * c.vocab_size + v];
        num = std::max(num, std::fabs(g - ref[t][v]));
        den = std::max(den, std::fabs(ref[t][v]));
      }
  }
  return num / den;
}

std::vector<std::vector<int32_t>> random_seqs(sppo_test::Rng& rng, int64_t V, std::vector<int64_t> lens) {
  std::vector<std::vector<int32_t>> s;
  for (auto n : lens) s.push_back(random_tokens(rng, n, V));
  return s;
}

}  // namespace

TEST(rope_inverse_frequencies_match_transformers_formulas) {
  for (auto c : {llama2_tiny(), linear_tiny(), llama3_tiny()}) {
    for (int64_t hd : {int64_t(4), int64_t(8), int64_t(128)}) {
      c.head_dim = hd;
      auto got = sppo::rope_inv_freq(c);
      auto ref = llama_ref::inv_freq(c);
      CHECK(got.size() == ref.size());
      for (size_t i = 0; i < ref.size(); ++i) CHECK_CLOSE(got[i], ref[i], 0.0, 2e-6);
    }
  }
  // llama3: high frequencies untouched, low ones divided by the factor, the middle smoothed.
  auto c = llama3_tiny();
  auto scaled = sppo::rope_inv_freq(c);
  c.rope_type = sppo::RopeType::Default;
  auto plain = sppo::rope_inv_freq(c);
  CHECK(scaled[0] == plain[0] && scaled[1] == plain[1]);
  CHECK_CLOSE(scaled[3], plain[3] / 8.0, 0.0, 1e-6);
  CHECK(scaled[2] < plain[2] && scaled[2] > plain[2] / 8.0);
}

TEST(logits_match_float64_reference_for_each_config_style) {
  sppo_test::Rng rng(1);
  for (auto c : {llama3_tiny(), llama2_tiny(), linear_tiny()}) {
    LlamaEngine<double> ref_eng(c);
    randomize(ref_eng.params(), rng);
    auto w = weights_of(ref_eng.params());
    auto seqs = random_seqs(rng, c.vocab_size, {rng.integer(3, 9), rng.integer(1, 9), 9});
    for (bool left : {false, true}) {
      Batch b = pad(seqs, {0, 0, 0}, left, 1);
      LlamaModel m(c);
      LlamaEngine<float> fe(c);
      copy_weights(ref_eng, fe);
      copy_weights(fe, m);
      std::vector<float> lg(b.B * b.T * c.vocab_size);
      m.logits(b.view(), lg.data());
      const double err = logits_error(c, lg, b, seqs, w);
      std::printf("  %s heads %lld/%lld %s padding: fp32 rel err %.2e\n", c.tie_word_embeddings ? "tied" : "untied",
                  (long long)c.num_heads, (long long)c.num_kv_heads, left ? "left" : "right", err);
      CHECK(err < 1e-5);
      std::vector<double> lgd(lg.size());
      ref_eng.logits(b.view(), lgd.data());
      std::vector<float> lgd_f(lgd.begin(), lgd.end());
      CHECK(logits_error(c, lgd_f, b, seqs, w) < 2e-6);  // fp32-rounded rope angles, as transformers
    }
  }
}

TEST(left_and_right_padding_agree_on_logits_and_logprobs) {
  sppo_test::Rng rng(2);
  auto c = llama3_tiny();
  LlamaModel m(c);
  LlamaEngine<float> fe(c);
  randomize(fe.params(), rng);
  copy_weights(fe, m);
  auto seqs = random_seqs(rng, c.vocab_size, {4, 7, 2, 6});
  std::vector<int64_t> resp = {2, 3, 1, 5};
  Batch l = pad(seqs, resp, true), r = pad(seqs, resp, false, 2, 5);
  std::vector<float> ll(l.B * l.T * c.vocab_size), lr(r.B * r.T * c.vocab_size);
  m.logits(l.view(), ll.data());
  m.logits(r.view(), lr.data());
  for (int64_t i = 0; i < l.B; ++i)
    for (size_t t = 0; t < seqs[i].size(); ++t)
      for (int64_t v = 0; v < c.vocab_size; ++v)
        CHECK_CLOSE(ll[(i * l.T + l.start[i] + t) * c.vocab_size + v], lr[(i * r.T + t) * c.vocab_size + v], 1e-5,
                    1e-5);
  std::vector<float> sl(l.B), sr(r.B);
  m.sequence_logprobs(l.view(), sl.data());
  m.sequence_logprobs(r.view(), sr.data());
  for (int64_t i = 0; i < l.B; ++i) CHECK_CLOSE(sl[i], sr[i], 1e-5, 1e-5);
}

TEST(sequence_logprobs_match_reference_log_softmax) {
  sppo_test::Rng rng(3);
  for (auto c : {llama3_tiny(), llama2_tiny()}) {
    LlamaModel m(c);
    auto w = randomize_model(c, m, rng);
    auto seqs = random_seqs(rng, c.vocab_size, {5, 8, 3});
    std::vector<int64_t> resp = {2, 7, 1};
    Batch b = pad(seqs, resp, true);
    std::vector<float> seq(b.B), tok(b.B * b.T);
    m.sequence_logprobs(b.view(), seq.data(), tok.data());
    for (int64_t i = 0; i < b.B; ++i) {
      auto ref = llama_ref::logits(c, w, seqs[i]);
      double total = 0;
      const int64_t n = static_cast<int64_t>(seqs[i].size());
      for (int64_t t = 0; t < n; ++t) {
        double expect = 0;
        if (t >= n - resp[i]) {
          double mx = -1e300, z = 0;
          for (double x : ref[t - 1]) mx = std::max(mx, x);
          for (double x : ref[t - 1]) z += std::exp(x - mx);
          expect = ref[t - 1][seqs[i][t]] - mx - std::log(z);
          total += expect;
        }
        CHECK_CLOSE(tok[i * b.T + b.start[i] + t], expect, 1e-5, 1e-5);
      }
      CHECK_CLOSE(seq[i], total, 1e-5, 1e-5);
    }
  }
}

TEST(reward_scores_match_reference_at_last_real_token) {
  sppo_test::Rng rng(4);
  auto c = reward_tiny();
  LlamaModel m(c);
  CHECK(m.find("score.weight") != nullptr);
  CHECK(m.find("lm_head.weight") == nullptr);
  auto w = randomize_model(c, m, rng);
  auto seqs = random_seqs(rng, c.vocab_size, {6, 2, 9});
  for (bool left : {true, false}) {
    Batch b = pad(seqs, {0, 0, 0}, left, 2);
    std::vector<float> s(b.B * c.num_labels);
    m.scores(b.view(), s.data());
    for (int64_t i = 0; i < b.B; ++i) {
      auto ref = llama_ref::score(c, w, seqs[i]);
      for (int64_t l = 0; l < c.num_labels; ++l) CHECK_CLOSE(s[i * c.num_labels + l], ref[l], 1e-5, 1e-5);
    }
  }
  std::vector<float> out(100);
  Batch b = pad(seqs, {0, 0, 0}, true);
  CHECK_THROWS_WITH(m.logits(b.view(), out.data()), "sequence-classification");
  b.mask[b.T] = 0;  // fully padded row 1 (length 2, left padded: only last two columns real)
  b.mask[b.T + b.T - 1] = 0;
  b.mask[b.T + b.T - 2] = 0;
  CHECK_THROWS_WITH(m.scores(b.view(), out.data()), "row 1 has no real token");
}

TEST(kv_cache_decoding_reproduces_full_forward_logits) {
  sppo_test::Rng rng(5);
  for (auto c : {llama3_tiny(), linear_tiny(), medium()}) {
    LlamaEngine<float> e(c);
    randomize(e.params(), rng);
    const int64_t k = c.vocab_size == medium().vocab_size ? 6 : 1;
    auto seqs = random_seqs(rng, c.vocab_size, {9 * k, 6 * k, 11 * k});
    Batch b = pad(seqs, {0, 0, 0}, false);
    std::vector<float> full(b.B * b.T * c.vocab_size);
    e.logits(b.view(), full.data());
    // Ragged prefill of different prompt lengths, then one token per sequence per step, through
    // blocks of 8 positions so that sequences span several blocks.
    std::vector<int64_t> prompt = {3 * k, 1, 5 * k};
    sppo::KVCache cache(e.model(), 3, 11 * k, sppo::KVCache::blocks_needed({9 * k, 6 * k, 11 * k}, 1, 0, 8), 8);
    std::vector<int> ids;
    std::vector<sppo::DecodeItem> items;
    for (int64_t i = 0; i < 3; ++i) {
      ids.push_back(cache.open());
      items.push_back({ids[i], seqs[i].data(), prompt[i]});
    }
    std::vector<float> lg(3 * c.vocab_size, NAN);
    const sppo::Tensor lgt(lg.data(), sppo::DType::F32, static_cast<int64_t>(lg.size()));
    double worst = 0;
    auto compare = [&](int64_t row, int64_t i, int64_t t) {
      for (int64_t v = 0; v < c.vocab_size; ++v) {
        const double a = lg[row * c.vocab_size + v], r = full[(i * b.T + t) * c.vocab_size + v];
        worst = std::max(worst, std::fabs(a - r));
      }
    };
    e.model().decode(cache, items, lgt);
    for (int64_t i = 0; i < 3; ++i) compare(i, i, prompt[i] - 1);
    for (int64_t step = 0;; ++step) {
      items.clear();
      std::vector<int64_t> ts, which;
      for (int64_t i = 0; i < 3; ++i) {
        const int64_t t = prompt[i] + step;
        if (t < static_cast<int64_t>(seqs[i].size())) {
          items.push_back({ids[i], seqs[i].data() + t, 1});
          ts.push_back(t);
          which.push_back(i);
        }
      }
      if (items.empty()) break;
      e.model().decode(cache, items, lgt);
      for (size_t r = 0; r < items.size(); ++r) compare(static_cast<int64_t>(r), which[r], ts[r]);
    }
    std::printf("  max |cached - full| = %.2e\n", worst);
    CHECK(worst == 0);  // the same arithmetic, bit for bit
    const int64_t room = cache.table_stride() * cache.block_size() - cache.length(ids[0]);
    const std::vector<int32_t> more(static_cast<size_t>(room + 1), 0);
    CHECK_THROWS_WITH(e.model().decode(cache, {{ids[0], more.data(), room + 1}}, lgt), "would hold");
  }
}

namespace {
// The first `count` rows of `block` in every layer's K and V pool (fp32, host memory).
std::vector<float> pool_rows(const sppo::KVCache& cache, const sppo::LlamaConfig& c, int32_t block, int64_t count) {
  const int64_t kw = c.num_kv_heads * c.head_dim, bs = cache.block_size();
  std::vector<float> out;
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (const sppo::Tensor& pool : {cache.k_pool(l), cache.v_pool(l)}) {
      const float* base = pool.as<float>() + static_cast<int64_t>(block) * bs * kw;
      out.insert(out.end(), base, base + count * kw);
    }
  return out;
}
}  // namespace

TEST(kv_cache_forks_share_blocks_and_copy_before_writing) {
  sppo_test::Rng rng(7);
  auto c = llama3_tiny();
  LlamaEngine<float> e(c);
  randomize(e.params(), rng);
  auto prompt = random_tokens(rng, 13, c.vocab_size);  // one full block of 8 and 5 positions
  sppo::KVCache cache(e.model(), 4, 32, 12, 8);
  const int p = cache.open();
  std::vector<float> lg(c.vocab_size);
  const sppo::Tensor lgt(lg.data(), sppo::DType::F32, c.vocab_size);
  e.model().decode(cache, {{p, prompt.data(), 13}}, lgt);
  const auto blocks = cache.blocks_of(p);
  CHECK(blocks.size() == 2);
  // The prompt's rows in every layer's pools, before any sample writes.
  auto rows_of = [&](int32_t block, int64_t count) { return pool_rows(cache, c, block, count); };
  const auto full0 = rows_of(blocks[0], 8), part0 = rows_of(blocks[1], 5);
  const int s1 = cache.fork(p), s2 = cache.fork(p);
  CHECK(cache.refcount(blocks[0]) == 3 && cache.refcount(blocks[1]) == 3);
  cache.close(p);
  CHECK(cache.refcount(blocks[0]) == 2);
  const int32_t t1 = 1, t2 = 2;
  e.model().decode(cache, {{s1, &t1, 1}}, lgt);
  // s1 wrote position 13: its partial block is now a copy; the shared one is untouched.
  const auto b1 = cache.blocks_of(s1), b2 = cache.blocks_of(s2);
  CHECK(b1[0] == blocks[0] && b2[0] == blocks[0] && b1[1] != blocks[1] && b2[1] == blocks[1]);
  CHECK(rows_of(blocks[0], 8) == full0);
  CHECK(rows_of(blocks[1], 5) == part0);
  CHECK(rows_of(b1[1], 5) == part0);  // the copy holds the prompt's rows
  e.model().decode(cache, {{s2, &t2, 1}}, lgt);  // the last holder writes in place
  CHECK(cache.blocks_of(s2)[1] == blocks[1]);
  CHECK(rows_of(blocks[0], 8) == full0);
  const int64_t before = cache.free_blocks();
  cache.close(s1);
  CHECK(cache.free_blocks() == before + 1);  // its own copy; the shared full block stays with s2
  cache.close(s2);
  CHECK(cache.free_blocks() == 12);
}

// Preemption's swap (model/kv_swap.cpp): a prompt and two forks, one of which copied its
// partial block, go to the host and come back on other blocks; the sharing, the refcounts, the
// bytes and the next step's logits are as if they had stayed, and copy-on-write still protects
// the prompt's blocks. A refused swap-in leaves the cache as it was.
TEST(kv_cache_swap_out_and_in_keeps_bytes_sharing_and_next_logits) {
  sppo_test::Rng rng(8);
  auto c = llama3_tiny();
  LlamaEngine<float> e(c);
  randomize(e.params(), rng);
  const int64_t V = c.vocab_size;
  auto prompt = random_tokens(rng, 13, V);  // one full block of 8 and 5 positions
  auto other = random_tokens(rng, 20, V);
  std::vector<float> lg(2 * V);
  const sppo::Tensor lgt(lg.data(), sppo::DType::F32, 2 * V);
  // Two caches driven alike; b swaps its sequences out and back in between.
  struct Seqs { int p, s1, s2; };
  const int32_t t0 = static_cast<int32_t>(rng.integer(0, V - 1));
  auto setup = [&](sppo::KVCache& cache) {
    Seqs q{cache.open(), -1, -1};
    e.model().decode(cache, {{q.p, prompt.data(), 13}}, lgt);
    q.s1 = cache.fork(q.p);
    q.s2 = cache.fork(q.p);
    e.model().decode(cache, {{q.s1, &t0, 1}}, lgt);  // s1 copies the partial block; s2 still shares it
    return q;
  };
  auto rows_of = [&](const sppo::KVCache& cache, int32_t block, int64_t count) { return pool_rows(cache, c, block, count); };
  sppo::KVCache a(e.model(), 6, 96, 14, 8), b(e.model(), 6, 96, 14, 8);
  const Seqs qa = setup(a), qb = setup(b);
  const auto before_p = b.blocks_of(qb.p);
  const auto full0 = rows_of(b, before_p[0], 8), part0 = rows_of(b, before_p[1], 5);
  const auto own1 = rows_of(b, b.blocks_of(qb.s1)[1], 6);
  CHECK(b.blocks_to_append(qb.s2, 1) == 1);  // shared partial block: a copy
  CHECK(b.blocks_to_append(qb.s1, 1) == 0);  // its own partial block
  CHECK(b.blocks_to_append(qb.s1, 3) == 1);  // 14 + 3 positions cross into a third block
  const int64_t free0 = b.free_blocks();
  sppo::KVCache::Swapped sw = b.swap_out({qb.p, qb.s1, qb.s2});
  CHECK(sw.blocks == 3);  // the full block, the shared partial one and s1's copy, once each
  CHECK(sw.size == 3 * b.block_bytes());
  CHECK(b.free_blocks() == 14 && !b.is_open(qb.p) && !b.is_open(qb.s1) && !b.is_open(qb.s2));
  CHECK(sw.blocks_to_append_one(2, 8) == 1 && sw.blocks_to_append_one(1, 8) == 0);
  // Another sequence takes the freed blocks and writes them, so the swap-in gets other blocks.
  const int o = b.open();
  e.model().decode(b, {{o, other.data(), 20}}, lgt);
  // Too few sequences free: refused, nothing taken.
  std::vector<int> filler;
  while (filler.size() < 3) filler.push_back(b.open());
  const int64_t free1 = b.free_blocks();
  CHECK_THROWS_WITH(b.swap_in(sw), "sequences with 2 free");
  CHECK(b.free_blocks() == free1);
  for (int f : filler) b.close(f);
  const std::vector<int> back = b.swap_in(sw);
  CHECK(back.size() == 3);
  const int p2 = back[0], s1 = back[1], s2 = back[2];
  CHECK(b.length(p2) == 13 && b.length(s1) == 14 && b.length(s2) == 13);
  const auto bp = b.blocks_of(p2), b1 = b.blocks_of(s1), b2 = b.blocks_of(s2);
  CHECK(bp == b2 && b1[0] == bp[0] && b1[1] != bp[1]);  // the same sharing
  CHECK(b.refcount(bp[0]) == 3 && b.refcount(bp[1]) == 2 && b.refcount(b1[1]) == 1);
  // o took back blocks the prompt had (the pool hands out the last freed first), so the prompt's
  // bytes came back on other blocks: the checks below read copies, not leftovers.
  const auto ob = b.blocks_of(o);
  CHECK(std::find(ob.begin(), ob.end(), before_p[0]) != ob.end() || std::find(ob.begin(), ob.end(), before_p[1]) != ob.end());
  CHECK(std::find(ob.begin(), ob.end(), bp[0]) == ob.end() && std::find(ob.begin(), ob.end(), bp[1]) == ob.end());
  CHECK(rows_of(b, bp[0], 8) == full0 && rows_of(b, bp[1], 5) == part0 && rows_of(b, b1[1], 6) == own1);
  CHECK(b.free_blocks() == free0 - 3);  // o's 3 blocks in place of the ones the swap freed
  // The next step on both caches: the same logits, bit for bit; s2 copies the partial block first.
  const int32_t t1 = static_cast<int32_t>(rng.integer(0, V - 1)), t2 = static_cast<int32_t>(rng.integer(0, V - 1));
  std::vector<float> la(2 * V, NAN), lb(2 * V, NAN);
  e.model().decode(a, {{qa.s1, &t1, 1}, {qa.s2, &t2, 1}}, sppo::Tensor(la.data(), sppo::DType::F32, 2 * V));
  e.model().decode(b, {{s1, &t1, 1}, {s2, &t2, 1}}, sppo::Tensor(lb.data(), sppo::DType::F32, 2 * V));
  CHECK(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)) == 0);
  CHECK(b.blocks_of(s2)[1] != bp[1]);
  CHECK(rows_of(b, bp[1], 5) == part0 && rows_of(b, bp[0], 8) == full0);  // the prompt's bytes untouched
  // A swap-in with more blocks than are free is refused before it takes any.
  const auto again = b.swap_out({p2, s1, s2});
  const int big = b.open();
  const auto fill = random_tokens(rng, 8 * (b.free_blocks() - 2), V);
  e.model().decode(b, {{big, fill.data(), static_cast<int64_t>(fill.size())}}, sppo::Tensor(lb.data(), sppo::DType::F32, V));
  CHECK(b.free_blocks() == 2);
  CHECK_THROWS_WITH(b.swap_in(again), "swap-in of 4 blocks with 2 free");
  CHECK(b.free_blocks() == 2);
}

TEST(bad_inputs_give_errors_naming_the_field) {
  auto c = llama3_tiny();
  LlamaModel m(c);
  sppo_test::Rng rng(6);
  m.init_random(rng.integer(0, 1 << 30), 0.3);
  auto seqs = random_seqs(rng, c.vocab_size, {4, 3});
  std::vector<float> out(2 * 4 * c.vocab_size), seq(2);
  Batch b = pad(seqs, {2, 1}, true);
  b.tok[1 * b.T + 2] = static_cast<int32_t>(c.vocab_size);
  CHECK_THROWS_WITH(m.logits(b.view(), out.data()), "tokens[1, 2]");
  b = pad(seqs, {2, 1}, true);
  b.mask[3] = 2;
  CHECK_THROWS_WITH(m.logits(b.view(), out.data()), "attention_mask[0, 3]");
  b = pad(seqs, {2, 1}, true);
  b.resp[1 * b.T + 0] = 1;  // a padding position of the left-padded second row
  CHECK_THROWS_WITH(m.sequence_logprobs(b.view(), seq.data()), "response_mask[1, 0] is set on a padding");
  b = pad(seqs, {4, 1}, false);  // the first token cannot be predicted
  CHECK_THROWS_WITH(m.sequence_logprobs(b.view(), seq.data()), "response_mask[0, 0]");
  b = pad(seqs, {2, 1}, true);
  auto v = b.view();
  v.B = 0;
  CHECK_THROWS_WITH(m.logits(v, out.data()), "batch size B");
  v = b.view();
  v.response_mask = nullptr;
  CHECK_THROWS_WITH(m.sequence_logprobs(v, seq.data()), "response_mask is null");
  std::vector<float> sc(2);
  CHECK_THROWS_WITH(m.scores(b.view(), sc.data()), "causal LM");
  // Configs.
  auto bad = c;
  bad.num_kv_heads = 3;
  CHECK_THROWS_WITH(LlamaModel x(bad), "num_kv_heads");
  bad = c;
  bad.head_dim = 7;
  CHECK_THROWS_WITH(LlamaModel x(bad), "head_dim");
  bad = c;
  bad.vocab_size = 0;
  CHECK_THROWS_WITH(sppo::validate_config(bad), "vocab_size");
  bad = c;
  bad.rms_norm_eps = 0;
  CHECK_THROWS_WITH(sppo::validate_config(bad), "rms_norm_eps");
  bad = c;
  bad.rope_high_freq_factor = 0.5;
  CHECK_THROWS_WITH(sppo::validate_config(bad), "rope_high_freq_factor");
  bad = c;
  bad.rope_type = static_cast<sppo::RopeType>(7);
  CHECK_THROWS_WITH(sppo::validate_config(bad), "rope_type");
}

TEST_MAIN()
