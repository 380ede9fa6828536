// Bucketed decode-only steps (model/decode_buckets.h) on the CPU: a step padded to its bucket
// gives the real rows bitwise the logits of the unpadded step (several row counts, lengths around
// block edges, rows joining and leaving); the padding rows write no pool row but their scratch
// slots (every other row of every layer's pools is compared byte for byte before and after each
// step), no real sequence's table ever names a scratch block, poisoning the scratch blocks with
// NaN before each step changes no real row, every real position holds the unpadded cache's K/V,
// and each padding row's logits are a lone token 0's (it attends to padding K/V only);
// generate() with buckets equals generate() without for every budget mix, sampled and greedy
// (tokens and log-probabilities bitwise), in fp32 and in the bf16 emulation; the bucket sizes and
// the refusals.
#include <cmath>
#include <cstring>
#include <limits>

#include "model/decode_buckets.h"
#include "model/kv_cache.h"
#include "model/scheduler.h"
#include "test_model_common.h"

using namespace model_test;
using sppo::DecodeItem;
using sppo::GenerateOptions;
using sppo::GenerateStats;
using sppo::Generation;
using sppo::KVCache;

namespace {

using Prompts = std::vector<std::vector<int32_t>>;

bool same(const Generation& a, const Generation& b) {
  return a.tokens == b.tokens && a.stopped_at_eos == b.stopped_at_eos && a.logprobs.size() == b.logprobs.size() &&
         (a.logprobs.empty() ||
          std::memcmp(a.logprobs.data(), b.logprobs.data(), a.logprobs.size() * sizeof(float)) == 0);
}

// Every layer's K and V pool rows, as bytes.
std::vector<char> pools_of(const KVCache& c, int64_t layers) {
  std::vector<char> out;
  for (int64_t l = 0; l < layers; ++l)
    for (const sppo::Tensor& t : {c.k_pool(l), c.v_pool(l)}) {
      const char* p = static_cast<const char*>(t.data);
      out.insert(out.end(), p, p + t.bytes());
    }
  return out;
}

// NaN in every scratch block (the padding slots and the rest of their blocks).
void poison_scratch(const KVCache& c, int64_t layers, int64_t kw) {
  const int64_t first = c.num_blocks() * c.block_size(), end = c.pool_blocks() * c.block_size();
  for (int64_t l = 0; l < layers; ++l)
    for (const sppo::Tensor& t : {c.k_pool(l), c.v_pool(l)})
      for (int64_t i = first * kw; i < end * kw; ++i) t.as<float>()[i] = std::numeric_limits<float>::quiet_NaN();
}

}  // namespace

TEST(padded_steps_give_the_real_rows_bitwise_the_unpadded_logits) {
  sppo_test::Rng rng(71);
  const sppo::LlamaConfig c = medium();  // multi-threaded matmul tiles and attention tasks
  Engine<float> e(c);
  e.init_random(static_cast<uint64_t>(rng.integer(0, 1 << 30)), 0.5);
  sppo::LlamaModel& m = e.model();
  const int64_t V = c.vocab_size, kw = c.num_kv_heads * c.head_dim, L = c.num_layers, bs = 16;
  const int64_t nseq = 13, max_len = 80, blocks = nseq * (max_len / bs + 1);
  KVCache plain(m, nseq, max_len, blocks, bs), padded(m, nseq, max_len, blocks, bs, sppo::decode_max_padding(nseq));
  sppo::DecodeBuckets buckets(m, padded, nseq);
  CHECK(buckets.sizes() == (std::vector<int64_t>{1, 2, 4, 8, 13}));
  CHECK(padded.padding_slots() == 4);  // 9 rows run at 13
  // Prompts around block edges, prefilled eagerly in both caches.
  std::vector<int> seqs;
  std::vector<int32_t> last(nseq);
  for (int64_t i = 0; i < nseq; ++i) {
    const int64_t len = std::vector<int64_t>{1, 15, 16, 17, 31, 32, 33, 5, 9, 2, 20, 47, 3}[static_cast<size_t>(i)];
    const std::vector<int32_t> p = random_tokens(rng, len, V);
    const int a = plain.open(), b = padded.open();
    CHECK(a == b);
    std::vector<float> la(V), lb(V);
    m.decode(plain, {DecodeItem{a, p.data(), len}}, sppo::Tensor(la.data(), sppo::DType::F32, V));
    m.decode(padded, {DecodeItem{b, p.data(), len}}, sppo::Tensor(lb.data(), sppo::DType::F32, V));
    CHECK(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)) == 0);
    seqs.push_back(a);
    last[static_cast<size_t>(i)] = p.back();
  }
  // A padding row computes what a one-token sequence of token 0 does: it attends to its own kind of
  // K/V alone (the first padding slot), nothing of a real sequence.
  std::vector<float> pad_ref(static_cast<size_t>(V));
  {
    KVCache one(m, 1, bs, 1, bs);
    const int32_t zero = 0;
    m.decode(one, {DecodeItem{one.open(), &zero, 1}}, sppo::Tensor(pad_ref.data(), sppo::DType::F32, V));
  }
  int64_t steps = 0, padded_rows = 0, mismatched = 0, touched = 0, pad_differ = 0;
  for (int64_t R : {1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 6, 1, 11, 13, 2}) {
    // R of the sequences (a different membership each step), in a shuffled order.
    std::vector<int> pick = seqs;
    for (size_t i = pick.size(); i > 1; --i) std::swap(pick[i - 1], pick[static_cast<size_t>(rng.integer(0, i - 1))]);
    pick.resize(static_cast<size_t>(R));
    std::vector<DecodeItem> items;
    for (int s : pick) items.push_back(DecodeItem{s, &last[static_cast<size_t>(s)], 1});
    std::vector<float> la(static_cast<size_t>(R * V), std::numeric_limits<float>::quiet_NaN());
    m.decode(plain, items, sppo::Tensor(la.data(), sppo::DType::F32, R * V));
    poison_scratch(padded, L, kw);
    const std::vector<char> before = pools_of(padded, L);
    std::vector<int32_t> real_slots;
    for (int s : pick) {
      const int64_t p = padded.length(s);  // the slot append will give: the sequence's next position
      const std::vector<int32_t> b = padded.blocks_of(s);
      real_slots.push_back(p % bs == 0 ? -1 : b.back() * static_cast<int32_t>(bs) + static_cast<int32_t>(p % bs));
    }
    const sppo::Tensor lb = m.decode_bucketed(padded, items, buckets);
    const int64_t Bk = buckets.sizes()[buckets.bucket_for(R)];
    CHECK(lb.numel == Bk * V);
    padded_rows += Bk - R;
    ++steps;
    if (std::memcmp(la.data(), lb.data, la.size() * sizeof(float)) != 0) ++mismatched;
    for (int64_t r = R; r < Bk; ++r)
      if (std::memcmp(pad_ref.data(), lb.as<float>() + r * V, pad_ref.size() * sizeof(float)) != 0) ++pad_differ;
    // Pool rows that changed: only this step's real slots (a new block's first slot when -1
    // above) and this step's padding slots, one per padding row.
    for (size_t i = 0; i < pick.size(); ++i)
      if (real_slots[i] < 0) {
        const std::vector<int32_t> b = padded.blocks_of(pick[i]);
        real_slots[i] = b.back() * static_cast<int32_t>(bs);
      }
    const std::vector<char> after = pools_of(padded, L);
    const int64_t row_bytes = kw * static_cast<int64_t>(sizeof(float)), rows = padded.pool_blocks() * bs;
    for (int64_t t = 0; t < 2 * L; ++t)
      for (int64_t r = 0; r < rows; ++r) {
        const size_t at = static_cast<size_t>((t * rows + r) * row_bytes);
        if (std::memcmp(before.data() + at, after.data() + at, static_cast<size_t>(row_bytes)) == 0) continue;
        const bool allowed = (r >= padded.scratch_slot(0) && r < padded.scratch_slot(0) + (Bk - R)) ||
                             std::find(real_slots.begin(), real_slots.end(), static_cast<int32_t>(r)) != real_slots.end();
        if (!allowed) ++touched;
      }
    for (int s : seqs) {
      CHECK(padded.blocks_of(s) == plain.blocks_of(s));
      for (int32_t b : padded.blocks_of(s)) CHECK(b < padded.num_blocks());  // never the scratch block
    }
    // The next tokens: each picked sequence's argmax.
    for (size_t i = 0; i < pick.size(); ++i) {
      const float* row = la.data() + i * static_cast<size_t>(V);
      last[static_cast<size_t>(pick[i])] = static_cast<int32_t>(std::max_element(row, row + V) - row);
    }
  }
  std::printf("  %lld steps, %lld padding rows, %lld with different logits, %lld pool rows touched by padding, "
              "%lld padding rows unlike a lone token 0\n",
              (long long)steps, (long long)padded_rows, (long long)mismatched, (long long)touched, (long long)pad_differ);
  CHECK(pad_differ == 0);
  CHECK(padded_rows > 0);
  CHECK(mismatched == 0);
  CHECK(touched == 0);
  // Every real sequence's positions hold the same K/V bytes as the unpadded cache's.
  int64_t differ = 0;
  const int64_t row_bytes = kw * static_cast<int64_t>(sizeof(float));
  for (int s : seqs)
    for (int64_t p = 0; p < padded.length(s); ++p) {
      const int64_t slot = padded.blocks_of(s)[static_cast<size_t>(p / bs)] * bs + p % bs;
      for (int64_t l = 0; l < L; ++l)
        for (int kv = 0; kv < 2; ++kv) {
          const sppo::Tensor a = kv ? plain.v_pool(l) : plain.k_pool(l), b = kv ? padded.v_pool(l) : padded.k_pool(l);
          if (std::memcmp(static_cast<char*>(a.data) + slot * row_bytes, static_cast<char*>(b.data) + slot * row_bytes,
                          static_cast<size_t>(row_bytes)) != 0)
            ++differ;
        }
    }
  CHECK(differ == 0);
}

TEST(bucketed_generation_equals_unbucketed_for_every_budget) {
  sppo_test::Rng rng(72);
  const sppo::LlamaConfig c = medium();
  Engine<float> e(c);
  e.init_random(static_cast<uint64_t>(rng.integer(0, 1 << 30)), 0.5);
  const int64_t V = c.vocab_size, K = 3;
  Prompts prompts;
  for (int64_t len : {int64_t{21}, int64_t{16}, int64_t{1}, int64_t{7}, int64_t{32}, rng.integer(2, 30)})
    prompts.push_back(random_tokens(rng, len, V));
  std::vector<uint64_t> seeds;
  for (size_t i = 0; i < prompts.size(); ++i) seeds.push_back(static_cast<uint64_t>(rng.integer(0, 1 << 30)));
  std::vector<int32_t> eos;
  while (eos.size() < 20) eos.push_back(static_cast<int32_t>(rng.integer(0, V - 1)));  // most samples stop early
  struct Budget {
    const char* name;
    int64_t batch_tokens, running, cache_tokens;
    bool drain;
  };
  const Budget budgets[] = {{"one prompt at a time", 32, K, 0, false},
                            {"joins mid-run", 32 + 2 * K, 2 * K + 1, 0, false},
                            {"tight KV memory", 0, 0, 16 * 16, false},
                            {"static batches (drain)", 32 + 2 * K, 2 * K + 1, 0, true},
                            {"running cap not a power of two", 0, 11, 0, false},
                            {"automatic", 0, 0, 0, false}};
  int64_t bucketed = 0, padding = 0;
  for (const bool greedy : {false, true})
    for (const Budget& b : budgets) {
      GenerateOptions o;
      o.temperature = 0.9;
      o.top_p = 0.95;
      o.greedy = greedy;
      o.max_new_tokens = 18;
      o.eos_ids = eos;
      o.max_batch_tokens = b.batch_tokens;
      o.max_running_sequences = b.running;
      o.max_cache_tokens = b.cache_tokens;
      o.drain_batch = b.drain;
      GenerateOptions on = o, off = o;
      on.decode_buckets = 1;
      off.decode_buckets = 0;
      GenerateStats s_on, s_off;
      const auto g_off = sppo::generate(e.model(), prompts, K, seeds, off, &s_off);
      const auto g_on = sppo::generate(e.model(), prompts, K, seeds, on, &s_on);
      bool all = g_on.size() == g_off.size();
      for (size_t s = 0; all && s < g_on.size(); ++s) all = same(g_on[s], g_off[s]);
      std::printf("  %-32s %s: %lld steps, %lld bucketed, %lld padding rows%s\n", b.name, greedy ? "greedy " : "sampled",
                  (long long)s_on.steps, (long long)s_on.bucketed_steps, (long long)s_on.padding_rows,
                  all ? "" : "  DIFFERENT");
      CHECK(all);
      CHECK(s_off.bucketed_steps == 0);
      CHECK(s_on.steps == s_off.steps);
      CHECK(s_on.free_blocks_at_end == s_on.kv_blocks);
      bucketed += s_on.bucketed_steps;
      padding += s_on.padding_rows;
    }
  CHECK(bucketed > 0);
  CHECK(padding > 0);
  // The CPU backend does not capture steps: automatic means no buckets here.
  CHECK(!e.model().backend().captures_steps());
  CHECK(!sppo::scheduler_buckets(GenerateOptions{}, e.model().backend()));
}

// The bf16 mode (the CPU's emulation: bf16 weights, activations and KV cache): the same bits too.
TEST(bucketed_generation_equals_unbucketed_in_bf16) {
  sppo_test::Rng rng(74);
  const sppo::LlamaConfig c = medium();
  sppo::LlamaModel m(sppo::backend_for(sppo::Device::CPU), c, sppo::Precision::BF16);
  m.init_random(static_cast<uint64_t>(rng.integer(0, 1 << 30)), 0.3);
  Prompts prompts;
  std::vector<uint64_t> seeds;
  for (int64_t len : {int64_t{19}, int64_t{3}, int64_t{16}, rng.integer(2, 30)}) {
    prompts.push_back(random_tokens(rng, len, c.vocab_size));
    seeds.push_back(static_cast<uint64_t>(rng.integer(0, 1 << 30)));
  }
  for (const int64_t running : {int64_t{0}, int64_t{5}}) {
    GenerateOptions o;
    o.temperature = 0.8;
    o.max_new_tokens = 14;
    o.eos_ids = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    o.max_running_sequences = running;
    GenerateOptions on = o, off = o;
    on.decode_buckets = 1;
    off.decode_buckets = 0;
    GenerateStats st;
    const auto a = sppo::generate(m, prompts, 3, seeds, off), b = sppo::generate(m, prompts, 3, seeds, on, &st);
    bool all = a.size() == b.size();
    for (size_t i = 0; all && i < a.size(); ++i) all = same(a[i], b[i]);
    std::printf("  bf16, running %lld: %lld bucketed steps, %lld padding rows%s\n", (long long)running,
                (long long)st.bucketed_steps, (long long)st.padding_rows, all ? "" : "  DIFFERENT");
    CHECK(all);
    CHECK(st.bucketed_steps > 0);
  }
}

TEST(bucket_sizes_and_refusals) {
  CHECK(sppo::decode_bucket_sizes(1) == (std::vector<int64_t>{1}));
  CHECK(sppo::decode_bucket_sizes(2) == (std::vector<int64_t>{1, 2}));
  CHECK(sppo::decode_bucket_sizes(5) == (std::vector<int64_t>{1, 2, 4, 5}));
  CHECK(sppo::decode_bucket_sizes(256) == (std::vector<int64_t>{1, 2, 4, 8, 16, 32, 64, 128, 256}));
  CHECK_THROWS_WITH(sppo::decode_bucket_sizes(0), "cap must be >= 1");
  sppo_test::Rng rng(73);
  const sppo::LlamaConfig c = llama3_tiny();
  Engine<float> e(c);
  e.init_random(5, 0.3);
  sppo::LlamaModel& m = e.model();
  CHECK(sppo::decode_max_padding(1) == 1 && sppo::decode_max_padding(3) == 1 && sppo::decode_max_padding(5) == 1);
  CHECK(sppo::decode_max_padding(8) == 3 && sppo::decode_max_padding(13) == 4 && sppo::decode_max_padding(256) == 127);
  KVCache plain(m, 4, 32, 8), padded(m, 4, 32, 8, 16, 1), other(m, 4, 32, 8, 16, 1), few(m, 4, 32, 8, 16, 2);
  CHECK_THROWS_WITH(sppo::DecodeBuckets(m, plain, 4), "0 padding slots");
  CHECK_THROWS_WITH(sppo::DecodeBuckets(m, few, 16), "need 7");
  CHECK_THROWS_WITH(plain.scratch_slot(0), "outside its 0 padding slots");
  CHECK_THROWS_WITH(padded.scratch_slot(1), "outside its 1 padding slots");
  CHECK(KVCache(m, 4, 32, 8, 16, 17).pool_blocks() == 10);  // two scratch blocks
  sppo::DecodeBuckets buckets(m, padded, 3);
  CHECK(buckets.bucket_for(1) == 0 && buckets.bucket_for(2) == 1 && buckets.bucket_for(3) == 2);
  CHECK_THROWS_WITH(buckets.bucket_for(4), "outside [1, 3]");
  CHECK(padded.pool_blocks() == 9 && padded.num_blocks() == 8 && padded.table_rows() == 5);
  // The allocation the planner counts is the constructor's.
  CHECK(KVCache::allocation_bytes(c, sppo::DType::F32, 4, 32, 8, 16, 1) ==
        KVCache::pool_bytes(c, sppo::DType::F32, 9, 16) + KVCache::table_bytes(5, 32, 16));
  const int s = padded.open(), o = other.open();
  const std::vector<int32_t> two = random_tokens(rng, 2, c.vocab_size);
  CHECK_THROWS_WITH(m.decode_bucketed(other, {DecodeItem{o, two.data(), 1}}, buckets), "another KV cache");
  CHECK_THROWS_WITH(m.decode_bucketed(padded, {DecodeItem{s, two.data(), 2}}, buckets), "one token per sequence");
  CHECK_THROWS_WITH(m.decode_bucketed(padded, {}, buckets), "outside [1, 3]");
}

TEST_MAIN()
