// PairRmModel (model/pairrm_model.h) against the float64 reference in pairrm_reference.h, on tiny
// random configs with the real structure (2 layers, several heads, log buckets, both relative
// terms): sequences long enough that every relative-embedding row is used, in fp64 (1e-10) and
// fp32 (1e-4); the c2p-only, p2c-only, unbucketed, unnormalized and multi-task variants; a
// sequence's result is bitwise the same alone and in a batch; the bucket formula at PairRM's
// settings; bad batches refused by name; bf16 (emulated on the CPU) close to fp32.
#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "backend/backend.h"
#include "bf16_compare.h"
#include "model/pairrm_model.h"
#include "model/relative_position.h"
#include "pairrm_reference.h"
#include "testing.h"

using namespace sppo;
using sppo_test::Rng;

namespace {


struct Seq {
  std::vector<int32_t> ids;
  int32_t slots[3];
};

// Random weights of order one (so every term matters), written through the model's views and
// returned as the reference's float64 copy of exactly the stored values.
sppo_test::Weights randomize(PairRmModel& m, Rng& rng) {
  sppo_test::Weights W;
  const bool f64 = m.dtypes().weight == DType::F64;
  for (size_t i = 0; i < m.layout().params().size(); ++i) {
    const ParamSpec& p = m.layout()[static_cast<int>(i)];
    const Tensor t = m.param(static_cast<int>(i));
    const bool norm_w = p.name.find("LayerNorm.weight") != std::string::npos;
    std::vector<double> v(static_cast<size_t>(p.numel));
    for (auto& x : v) {
      if (p.shape.size() == 2) x = rng.normal(0, p.name.find("embeddings") != std::string::npos ? 1.0 : 1.0 / std::sqrt(double(p.shape[1])));
      else x = norm_w ? 1 + 0.2 * rng.normal() : 0.2 * rng.normal();
      if (!f64) x = static_cast<double>(static_cast<float>(x));
      if (f64) t.as<double>()[&x - v.data()] = x;
      else t.as<float>()[&x - v.data()] = static_cast<float>(x);
    }
    W[p.name] = v;
  }
  return W;
}

std::vector<Seq> random_seqs(Rng& rng, const PairRmConfig& c, std::vector<int32_t> lengths) {
  std::vector<Seq> out;
  for (int32_t L : lengths) {
    Seq s;
    for (int32_t t = 0; t < L; ++t) s.ids.push_back(static_cast<int32_t>(rng.integer(0, c.vocab_size - 1)));
    for (int k = 0; k < 3; ++k) s.slots[k] = static_cast<int32_t>(rng.integer(0, L - 1));
    out.push_back(s);
  }
  return out;
}

struct Packed {
  std::vector<int32_t> lengths, tokens, slots;
  PairBatch view() const {
    PairBatch b;
    b.S = static_cast<int64_t>(lengths.size());
    b.lengths = lengths.data();
    b.tokens = tokens.data();
    b.slots = slots.data();
    return b;
  }
};
Packed pack(const std::vector<Seq>& seqs) {
  Packed p;
  for (const auto& s : seqs) {
    p.lengths.push_back(static_cast<int32_t>(s.ids.size()));
    p.tokens.insert(p.tokens.end(), s.ids.begin(), s.ids.end());
    p.slots.insert(p.slots.end(), s.slots, s.slots + 3);
  }
  return p;
}

// Max-norm relative error of the hidden states and relative errors of the logits.
void check_against_reference(const PairRmConfig& c, Precision prec, uint64_t salt, double tol) {
  Rng rng(salt);
  PairRmModel m(backend_for(Device::CPU), c, prec);
  const auto W = randomize(m, rng);
  const auto seqs = random_seqs(rng, c, {3, 47, 1, 25});
  const Packed p = pack(seqs);
  std::vector<double> hidden(p.tokens.size() * c.hidden_size, NAN), logits(seqs.size(), NAN);
  m.hidden_states(p.view(), Tensor(hidden.data(), DType::F64, static_cast<int64_t>(hidden.size())));
  m.compare(p.view(), Tensor(logits.data(), DType::F64, static_cast<int64_t>(logits.size())));
  size_t at = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const auto ref = sppo_test::ref_pairrm(c, W, seqs[s].ids, seqs[s].slots);
    double err = 0, scale = 0;
    for (size_t i = 0; i < ref.hidden.size(); ++i) {
      err = std::max(err, std::fabs(hidden[at + i] - ref.hidden[i]));
      scale = std::max(scale, std::fabs(ref.hidden[i]));
    }
    at += ref.hidden.size();
    if (!(err <= tol * scale)) std::printf("  sequence %zu: hidden states off by %g (scale %g)\n", s, err, scale);
    CHECK(err <= tol * scale);
    CHECK_CLOSE(logits[s], ref.logit, tol, tol);
  }
}

}  // namespace

TEST(every_relative_row_is_used_by_the_test_sequences) {
  // With offsets up to 46 and 16 rows, the reference's own bucket formula reaches every row.
  const PairRmConfig c = sppo_test::pairrm_tiny();
  std::set<int64_t> rows;
  for (int64_t r = -46; r <= 46; ++r) rows.insert(sppo_test::ref_row(c, r));
  CHECK(static_cast<int64_t>(rows.size()) == 2 * c.position_buckets);
}

TEST(fp64_matches_the_float64_reference) { check_against_reference(sppo_test::pairrm_tiny(), Precision::FP64, 1, 1e-10); }
TEST(fp32_matches_the_float64_reference) { check_against_reference(sppo_test::pairrm_tiny(), Precision::FP32, 2, 1e-4); }

TEST(variants_match_the_reference) {
  PairRmConfig c = sppo_test::pairrm_tiny();
  c.p2c = false;
  check_against_reference(c, Precision::FP64, 3, 1e-10);
  c = sppo_test::pairrm_tiny();
  c.c2p = false;
  check_against_reference(c, Precision::FP64, 4, 1e-10);
  c = sppo_test::pairrm_tiny();
  c.position_buckets = 0;  // plain clamped offsets over 2 * 20 rows
  check_against_reference(c, Precision::FP64, 5, 1e-10);
  c = sppo_test::pairrm_tiny();
  c.norm_rel_embeddings = false;
  c.num_tasks = 3;
  c.num_heads = 2;
  c.head_dim = 8;
  check_against_reference(c, Precision::FP64, 6, 1e-10);
}

// bf16 and fp16 on the CPU (emulated) against fp32 on the same weights (rounded to the 16-bit type
// in the 16-bit model): hidden states within 2e-2 relative norm for bf16 and 5e-3 for fp16 (three
// more mantissa bits: about 8 times closer), the pair comparisons' logits within the same fraction
// of max(1, their largest) (differences of head outputs of order one, which cancel). fp16 must
// also come out closer than bf16: a kernel that took F16 bits for BF16 ones would not.
TEST(bf16_and_fp16_hidden_states_and_pair_scores_are_close_to_fp32) {
  Rng rng(5);
  PairRmConfig variant = sppo_test::pairrm_tiny();
  variant.norm_rel_embeddings = false;
  variant.num_tasks = 3;
  variant.p2c = false;
  for (const PairRmConfig& c : {sppo_test::pairrm_tiny(), variant}) {
    PairRmModel f(backend_for(Device::CPU), c, Precision::FP32);
    const auto w = bf16_test::pairrm_weights(f.layout(), rng);
    bf16_test::set_params(f, w);
    const Packed p = pack(random_seqs(rng, c, {3, 47, 1, 25}));
    auto run = [&](PairRmModel& m, std::vector<float>& hid, std::vector<float>& lg) {
      hid.assign(p.tokens.size() * static_cast<size_t>(c.hidden_size), NAN);
      lg.assign(p.lengths.size(), NAN);
      m.hidden_states(p.view(), Tensor(hid.data(), DType::F32, static_cast<int64_t>(hid.size())));
      m.compare(p.view(), Tensor(lg.data(), DType::F32, static_cast<int64_t>(lg.size())));
    };
    std::vector<float> hid32, lg32;
    run(f, hid32, lg32);
    double hid_err[2] = {0, 0};
    for (int k = 0; k < 2; ++k) {
      const Precision prec = k == 0 ? Precision::BF16 : Precision::FP16;
      const double tol = k == 0 ? bf16_test::kLogitsRel : bf16_test::kLogitsRel / 4;
      PairRmModel h(backend_for(Device::CPU), c, prec);
      bf16_test::set_params(h, w);
      std::vector<float> hid, lg;
      run(h, hid, lg);
      const std::string what = std::string("PairRM ") + precision_name(prec) +
                               (c.num_tasks == 1 ? "" : " (p2c off, unnormalized, 3 tasks)");
      hid_err[k] = bf16_test::expect_rel_norm(what + " hidden states", hid, hid32, tol);
      double scale = 1, err = 0;
      for (size_t i = 0; i < lg32.size(); ++i) {
        scale = std::max(scale, std::fabs(double(lg32[i])));
        err = std::isfinite(lg[i]) ? std::max(err, std::fabs(double(lg[i]) - lg32[i])) : INFINITY;
      }
      std::printf("  %s: hidden states %.2e relative, comparison logits off by %.3g (scale %.3g)\n", what.c_str(),
                  hid_err[k], err, scale);
      CHECK(err <= tol * scale);
      CHECK(hid != hid32);  // the 16-bit model does round
    }
    CHECK(hid_err[1] < hid_err[0] / 2);
  }
}

TEST(a_pair_gives_the_same_bits_alone_and_in_a_batch) {
  Rng rng(7);
  const PairRmConfig c = sppo_test::pairrm_tiny();
  PairRmModel m(backend_for(Device::CPU), c, Precision::FP32);
  randomize(m, rng);
  const auto seqs = random_seqs(rng, c, {9, 30, 2, 47, 18});
  std::vector<float> all(seqs.size());
  m.compare(pack(seqs).view(), Tensor(all.data(), DType::F32, static_cast<int64_t>(all.size())));
  for (size_t s = 0; s < seqs.size(); ++s) {
    float one = NAN;
    m.compare(pack({seqs[s]}).view(), Tensor(&one, DType::F32, 1));
    CHECK(one == all[s]);
  }
}

TEST(buckets_at_pairrm_settings) {
  // Offsets and their rows for 256 buckets over 512 positions (rows = bucket + 256, clamped).
  const int64_t cases[][2] = {{0, 0},     {1, 1},     {-1, -1},   {128, 128}, {129, 129}, {-129, -129},
                              {200, 169}, {300, 207}, {400, 233}, {510, 255}, {511, 255}, {512, 256},
                              {1000, 317}, {-2047, -383}};
  for (auto& cs : cases) CHECK(relative_bucket(cs[0], 256, 512) == cs[1]);
  PairRmConfig c = sppo_test::pairrm_tiny();
  c.position_buckets = 256;
  c.max_relative_positions = 512;
  const auto rows = relative_rows(c, 2048);
  CHECK(rows[2047 + 0] == 256);
  CHECK(rows[2047 + 511] == 511);
  CHECK(rows[2047 + 2047] == 511);
  CHECK(rows[2047 - 2047] == 0);
  CHECK(rows[2047 - 128] == 128);
  for (int64_t r = -2047; r <= 2047; ++r) CHECK(rows[2047 + r] == sppo_test::ref_row(c, r));
}

TEST(bad_batches_are_refused_by_name) {
  PairRmModel m(backend_for(Device::CPU), sppo_test::pairrm_tiny(), Precision::FP32);
  std::vector<int32_t> lengths = {3}, tokens = {1, 2, 3}, slots = {0, 1, 3};
  PairBatch b{1, lengths.data(), tokens.data(), slots.data()};
  float out;
  CHECK_THROWS_WITH(m.compare(b, Tensor(&out, DType::F32, 1)), "slot 2 of sequence 0 is at position 3");
  slots = {0, 1, 2};
  tokens = {1, 40, 3};
  CHECK_THROWS_WITH(m.compare(b, Tensor(&out, DType::F32, 1)), "token 1 of sequence 0 is 40, outside the vocabulary");
  lengths = {0};
  CHECK_THROWS_WITH(m.compare(b, Tensor(&out, DType::F32, 1)), "sequence 0 has length 0");
  PairRmConfig c = sppo_test::pairrm_tiny();
  c.head_dim = 5;
  CHECK_THROWS_WITH(PairRmModel(backend_for(Device::CPU), c, Precision::FP32), "must equal hidden_size");
}

TEST_MAIN()
