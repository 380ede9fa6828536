// Next-token choice (kernels/sample.h) and its generator (core/philox.h):
// - Philox-4x32-10 against the Random123 known-answer vectors, and the (seed, sequence, step)
//   convention of draw();
// - sample_weights against float64 exp((x - max) / temperature), the largest weight exactly 1;
// - argmax_rows: the first maximum on ties;
// - sample_pick against a brute-force implementation of the contract written here (integer q,
//   top-k with ties at the k-th value kept, top-p on the (q desc, id asc) order, the id-order
//   walk, logp), on random weights with ties, zeros and weights below 2^-40, V = 1, V not a
//   multiple of 8 and V = 128256;
// - a chi-square test of the drawn frequencies against the tempered, truncated softmax;
// - kernels/sample_math.h, the math cuda/sample.cu shares: its scalar exp is the AVX2 exp8 bit for
//   bit, its weights are the CPU's AVX2 weights, its log is within 1 ulp of std::log (0 at 1);
// - bad arguments refused by name.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "core/philox.h"
#include "core/simd.h"
#include "core/simd_avx2.h"
#include "kernels/sample.h"
#include "kernels/sample_math.h"
#include "op_testing.h"

using namespace sppo_test;
using sppo::SampleStream;
namespace philox = sppo::philox;

namespace {

bool same(const philox::U32x4& a, const philox::U32x4& b) {
  return std::equal(a.x, a.x + 4, b.x);
}

// The contract's pick, by brute force: sort everything, no buckets, no early exits.
struct Pick {
  int32_t token;
  float logp;
};

Pick ref_pick(const float* w, int64_t V, int64_t top_k, double top_p, const SampleStream& st) {
  std::vector<uint64_t> q(V);
  for (int64_t j = 0; j < V; ++j) q[j] = static_cast<uint64_t>(std::floor(double(w[j]) * std::ldexp(1.0, 40)));
  std::vector<bool> keep(V);
  for (int64_t j = 0; j < V; ++j) keep[j] = q[j] > 0;
  if (top_k > 0 && top_k < V) {
    std::vector<uint64_t> sorted = q;
    std::sort(sorted.rbegin(), sorted.rend());
    for (int64_t j = 0; j < V; ++j) keep[j] = keep[j] && q[j] >= sorted[top_k - 1];
  }
  if (top_p < 1) {
    std::vector<int64_t> order;
    uint64_t total = 0;
    for (int64_t j = 0; j < V; ++j)
      if (keep[j]) order.push_back(j), total += q[j];
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return q[a] != q[b] ? q[a] > q[b] : a < b; });
    const uint64_t need = static_cast<uint64_t>(std::ceil(double(total) * top_p));
    uint64_t before = 0;
    for (int64_t j : order) {
      keep[j] = before < need;
      before += q[j];
    }
  }
  uint64_t kept = 0;
  for (int64_t j = 0; j < V; ++j)
    if (keep[j]) kept += q[j];
  const uint64_t u = philox::bits53(philox::draw(st.seed, st.sequence, st.step));
  const uint64_t r = static_cast<uint64_t>((static_cast<unsigned __int128>(u) * kept) >> 53);
  uint64_t run = 0;
  for (int64_t j = 0; j < V; ++j) {
    if (!keep[j]) continue;
    run += q[j];
    if (run > r) return {static_cast<int32_t>(j), sppo::sample_math::logp(q[j], kept)};  // log: tested below
  }
  return {-1, 0.f};
}

// Weights of several kinds: a softmax of random logits (largest 1), few distinct values (ties),
// zeros and weights that round to q = 0.
std::vector<float> make_weights(Rng& rng, int64_t V, int kind) {
  std::vector<float> w(V);
  for (auto& x : w) {
    if (kind == 0) x = static_cast<float>(std::exp(-std::fabs(rng.normal(0, 3))));
    else if (kind == 1) x = static_cast<float>(rng.integer(0, 4)) / 4.f;
    else if (rng.uniform() < 0.3) x = static_cast<float>(std::ldexp(rng.uniform(0, 1), -41));  // q = 0
    else x = static_cast<float>(rng.uniform());
  }
  w[rng.integer(0, V - 1)] = 1.f;  // every row can draw something
  return w;
}

#if SPPO_HAVE_AVX2_PATH
SPPO_TARGET_AVX2 void exp8_of(const float* x, float* out) { _mm256_storeu_ps(out, sppo::simd::exp8(_mm256_loadu_ps(x))); }
#endif

double chi2_critical(int df, double z) {  // Wilson-Hilferty: the quantile at normal score z
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1 - a + z * std::sqrt(a), 3);
}

}  // namespace

TEST(philox_matches_the_random123_known_answers) {
  const struct {
    philox::U32x4 ctr;
    uint32_t k0, k1;
    philox::U32x4 want;
  } kat[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
      {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
       0xffffffffu,
       0xffffffffu,
       {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
      {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
       0xa4093822u,
       0x299f31d0u,
       {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
  };
  for (const auto& t : kat) {
    const philox::U32x4 got = philox::philox4x32_10(t.ctr, t.k0, t.k1);
    if (!same(got, t.want))
      std::printf("  got %08x %08x %08x %08x, expected %08x %08x %08x %08x\n", got.x[0], got.x[1], got.x[2], got.x[3],
                  t.want.x[0], t.want.x[1], t.want.x[2], t.want.x[3]);
    CHECK(same(got, t.want));
  }
}

TEST(draw_keys_by_seed_and_counts_by_step_then_sequence) {
  Rng rng(171);
  for (int i = 0; i < 20; ++i) {
    const uint64_t seed = rng.gen(), seq = rng.gen(), step = rng.gen();
    const philox::U32x4 ctr{{uint32_t(step), uint32_t(step >> 32), uint32_t(seq), uint32_t(seq >> 32)}};
    const philox::U32x4 got = philox::draw(seed, seq, step);
    CHECK(same(got, philox::philox4x32_10(ctr, uint32_t(seed), uint32_t(seed >> 32))));
    const uint64_t b = philox::bits53(got);
    CHECK(b == (((uint64_t(got.x[0]) << 32) | got.x[1]) >> 11));
    CHECK(philox::uniform53(got) == std::ldexp(double(b), -53));
    CHECK(!same(got, philox::draw(seed, seq, step + 1)) && !same(got, philox::draw(seed, seq + 1, step)) &&
          !same(got, philox::draw(seed + 1, seq, step)));
  }
}

template <typename T>
void check_weights(uint64_t salt) {
  Rng rng(salt);
  for (int64_t V : {1, 7, 8, 9, 1001})
    for (double temp : {0.05, 0.7, 1.0, 3.0}) {
      const int64_t n = 3;
      auto x = randn<T>(rng, n * V, 5.0);
      x[0] = static_cast<T>(200);  // row 0: one far ahead, the rest underflow at small temperatures
      auto w = poisoned<float>(n * V);
      sppo::cpu::sample_weights(x.data(), n, V, temp, w.data());
      std::vector<double> want(n * V);
      int bad = 0;
      for (int64_t r = 0; r < n; ++r) {
        const T* xr = &x[r * V];
        const double m = double(*std::max_element(xr, xr + V));
        float wmax = 0.f;
        for (int64_t j = 0; j < V; ++j) {
          const double arg = (double(xr[j]) - m) / temp, want_w = std::exp(arg), got = w[r * V + j];
          wmax = std::max(wmax, w[r * V + j]);
          // float32: the argument's own rounding scales with |arg|; below float's range, 0 is fine.
          const double tol = ulps<float>(4 + 2 * std::fabs(arg)) * want_w + 1e-38;
          if (!(std::fabs(got - want_w) <= tol) && ++bad <= 3)
            std::printf("  w[%lld, %lld] = %.9g, expected %.9g\n", (long long)r, (long long)j, got, want_w);
        }
        CHECK(wmax == 1.f);
      }
      CHECK(bad == 0);
    }
}

TEST(weights_match_float64_tempered_exp_in_float) { check_weights<float>(172); }
TEST(weights_match_float64_tempered_exp_in_double) { check_weights<double>(173); }

template <typename T>
void check_argmax(uint64_t salt) {
  Rng rng(salt);
  for (int64_t V : {1, 2, 9, 1000}) {
    const int64_t n = 6;
    std::vector<T> x(n * V);
    for (auto& v : x) v = static_cast<T>(rng.integer(-3, 3));  // many ties
    std::vector<int32_t> got(n, -5);
    sppo::cpu::argmax_rows(x.data(), n, V, got.data());
    for (int64_t r = 0; r < n; ++r) {
      int64_t best = 0;
      for (int64_t j = 0; j < V; ++j)
        if (x[r * V + j] > x[r * V + best]) best = j;
      CHECK(got[r] == best);
    }
  }
}

TEST(argmax_takes_the_first_maximum_in_float) { check_argmax<float>(174); }
TEST(argmax_takes_the_first_maximum_in_double) { check_argmax<double>(175); }

TEST(pick_matches_the_brute_force_contract) {
  Rng rng(176);
  int tested = 0;
  for (int64_t V : {1, 2, 7, 13, 1000, 4097})
    for (int kind = 0; kind < 3; ++kind)
      for (int64_t top_k : {int64_t(0), int64_t(1), int64_t(2), int64_t(5), V, V + 3})
        for (double top_p : {1.0, 0.9, 0.5, 1e-9, 0.999999}) {
          const int64_t n = 4;
          std::vector<float> w;
          for (int64_t r = 0; r < n; ++r) {
            const auto row = make_weights(rng, V, kind);
            w.insert(w.end(), row.begin(), row.end());
          }
          std::vector<SampleStream> st(n);
          for (auto& s : st) s = {rng.gen(), rng.gen() % 64, rng.gen() % 4096};
          std::vector<int32_t> tokens(n, -5);
          auto logp = poisoned<float>(n);
          sppo::cpu::sample_pick(w.data(), n, V, top_k, top_p, st.data(), tokens.data(), logp.data());
          for (int64_t r = 0; r < n; ++r) {
            const Pick want = ref_pick(&w[r * V], V, top_k, top_p, st[r]);
            if (tokens[r] != want.token || logp[r] != want.logp)
              std::printf("  V %lld kind %d top_k %lld top_p %g: token %d logp %.9g, expected %d %.9g\n", (long long)V,
                          kind, (long long)top_k, top_p, tokens[r], logp[r], want.token, want.logp);
            CHECK(tokens[r] == want.token && logp[r] == want.logp);
            ++tested;
          }
        }
  CHECK(tested > 0);
}

TEST(pick_over_a_llama3_vocabulary_matches_the_contract) {
  Rng rng(177);
  const int64_t V = 128256, n = 3;
  auto logits = randn<float>(rng, n * V, 2.0);
  std::vector<float> w(n * V);
  sppo::cpu::sample_weights(logits.data(), n, V, 0.7, w.data());
  for (int64_t k = 0; k < 50; ++k) w[rng.integer(0, V - 1)] = w[rng.integer(0, V - 1)];  // some exact ties
  for (auto [top_k, top_p] : {std::pair<int64_t, double>{0, 0.9}, {50, 1.0}, {0, 1.0}, {40, 0.95}}) {
    std::vector<SampleStream> st(n);
    for (auto& s : st) s = {rng.gen(), rng.gen(), rng.gen()};
    std::vector<int32_t> tokens(n);
    std::vector<float> logp(n);
    sppo::cpu::sample_pick(w.data(), n, V, top_k, top_p, st.data(), tokens.data(), logp.data());
    for (int64_t r = 0; r < n; ++r) {
      const Pick want = ref_pick(&w[r * V], V, top_k, top_p, st[r]);
      CHECK(tokens[r] == want.token && logp[r] == want.logp);
    }
  }
}

// Many draws of one row (the same weights, consecutive steps) against the distribution the draws
// come from, computed here in float64 from the logits: softmax(logits / temperature), cut to the
// top k and then to the smallest set reaching top_p, renormalised.
TEST(drawn_frequencies_follow_the_tempered_truncated_softmax) {
  Rng rng(178);
  const int64_t V = 37, draws = 40000;
  const double temp = 0.7;
  for (auto [top_k, top_p] : {std::pair<int64_t, double>{0, 1.0}, {10, 1.0}, {0, 0.9}, {12, 0.8}}) {
    const auto logits = randn<float>(rng, V, 1.5);
    std::vector<float> w(V);
    sppo::cpu::sample_weights(logits.data(), 1, V, temp, w.data());
    std::vector<double> p(V);
    const double m = *std::max_element(logits.begin(), logits.end());
    for (int64_t j = 0; j < V; ++j) p[j] = std::exp((logits[j] - m) / temp);
    std::vector<int64_t> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    if (top_k > 0)
      for (int64_t i = top_k; i < V; ++i) p[order[i]] = 0;
    double z = std::accumulate(p.begin(), p.end(), 0.0), before = 0;
    for (int64_t j : order) {
      const double pj = p[j] / z;
      if (before >= top_p) p[j] = 0;
      before += pj;
    }
    z = std::accumulate(p.begin(), p.end(), 0.0);
    for (auto& x : p) x /= z;
    std::vector<float> rows(draws * V);
    std::vector<SampleStream> st(draws);
    const uint64_t seed = rng.gen();
    for (int64_t i = 0; i < draws; ++i) {
      std::copy(w.begin(), w.end(), rows.begin() + i * V);
      st[i] = {seed, 3, static_cast<uint64_t>(i)};
    }
    std::vector<int32_t> tokens(draws);
    std::vector<float> logp(draws);
    sppo::cpu::sample_pick(rows.data(), draws, V, top_k, top_p, st.data(), tokens.data(), logp.data());
    std::vector<int64_t> count(V, 0);
    for (int32_t t : tokens) ++count[t];
    double chi2 = 0;
    int df = -1, outside = 0;
    for (int64_t j = 0; j < V; ++j) {
      if (p[j] == 0) {
        outside += count[j] > 0;
        continue;
      }
      const double e = p[j] * draws;
      chi2 += (count[j] - e) * (count[j] - e) / e;
      ++df;
    }
    CHECK(outside == 0);  // nothing outside the truncated set is ever drawn
    if (df > 0) {
      const double crit = chi2_critical(df, 4.75);  // p ~ 1e-6: fails on a wrong distribution, not on chance
      if (!(chi2 < crit))
        std::printf("  top_k %lld top_p %g: chi2 %.1f with %d df, limit %.1f\n", (long long)top_k, top_p, chi2, df,
                    crit);
      CHECK(chi2 < crit);
    }
    // Each draw's logp is the log-probability of its token under that distribution.
    for (int64_t i = 0; i < 100; ++i) CHECK_CLOSE(logp[i], std::log(p[tokens[i]]), 1e-5, 0);
  }
}

TEST(shared_exp_is_the_avx2_exp_bit_for_bit) {
#if SPPO_HAVE_AVX2_PATH
  if (!sppo::simd::use_avx2()) {
    std::printf("  skipped: the AVX2+FMA path is not in use here\n");
    return;
  }
  Rng rng(179);
  std::vector<float> x(1 << 16);
  int64_t bad = 0;
  for (int rep = 0; rep < 6; ++rep) {
    for (auto& v : x) v = static_cast<float>(std::ldexp(rng.uniform(-120, 100), rep < 3 ? 0 : -int(rng.integer(1, 30))));
    const float edges[] = {0.f, -0.f, 88.72283935546875f, -103.972084045410f, 89.f, -104.f, -INFINITY, -87.3f, 1e-30f};
    std::copy(std::begin(edges), std::end(edges), x.begin());
    for (size_t i = 0; i < x.size(); i += 8) {
      float want[8];
      exp8_of(&x[i], want);
      for (int k = 0; k < 8; ++k) {
        const float got = sppo::sample_math::exp_f32(x[i + k]);
        if (std::memcmp(&got, &want[k], sizeof got) != 0 && ++bad <= 3)
          std::printf("  exp_f32(%.9g) = %.9g, exp8 gives %.9g\n", x[i + k], got, want[k]);
      }
    }
  }
  CHECK(bad == 0);
  // And so the shared weights are the CPU's (AVX2) sample_weights.
  const int64_t n = 3, V = 1031;
  const auto logits = randn<float>(rng, n * V, 4.0);
  for (double temp : {0.05, 0.7, 1.0, 3.0}) {
    std::vector<float> w(n * V);
    sppo::cpu::sample_weights(logits.data(), n, V, temp, w.data());
    for (int64_t r = 0; r < n; ++r) {
      const float m = *std::max_element(&logits[r * V], &logits[r * V] + V);
      for (int64_t j = 0; j < V; ++j) {
        const float got = sppo::sample_math::weight(logits[r * V + j], m, static_cast<float>(temp));
        if (std::memcmp(&got, &w[r * V + j], sizeof got) != 0 && ++bad <= 3)
          std::printf("  weight %lld of row %lld: %.9g, sample_weights gives %.9g\n", (long long)j, (long long)r, got,
                      w[r * V + j]);
      }
    }
  }
  CHECK(bad == 0);
#else
  std::printf("  skipped: no AVX2 path in this build\n");
#endif
}

TEST(shared_log_is_within_an_ulp_of_std_log) {
  Rng rng(180);
  namespace sm = sppo::sample_math;
  CHECK(sm::log_int(1) == 0.0);
  CHECK(sm::logp(12345, 12345) == 0.f);
  double worst = 0;
  for (int i = 0; i < 200000; ++i) {
    uint64_t x = i < 5000 ? uint64_t(i + 1) : i < 5064 ? uint64_t{1} << (i - 5000) : rng.gen() >> rng.integer(0, 63);
    if (x == 0) x = 1;
    if (i >= 5064 && i % 3 == 0) x = (uint64_t{1} << rng.integer(1, 63)) + rng.integer(-1, 1);  // around powers of 2
    const double want = std::log(static_cast<double>(x)), got = sm::log_int(x);
    const double ulp = want == 0 ? std::ldexp(1.0, -1074) : std::ldexp(1.0, std::ilogb(want) - 52);
    worst = std::max(worst, std::fabs(got - want) / ulp);
  }
  if (!(worst <= 1.0)) std::printf("  log_int is %.3f ulp from std::log\n", worst);
  CHECK(worst <= 1.0);
  for (int i = 0; i < 1000; ++i) {
    const uint64_t kept = (rng.gen() >> rng.integer(1, 63)) + 1, q = kept - rng.gen() % kept;
    CHECK_CLOSE(sm::logp(q, kept), std::log(double(q)) - std::log(double(kept)), 1e-12, 1e-7);
  }
  CHECK(sm::bit_length(0) == 0 && sm::bit_length(1) == 1 && sm::bit_length(uint64_t{1} << 40) == 41);
  CHECK(sm::quantize(1.f) == (uint64_t{1} << 40) && sm::quantize(0x1p-41f) == 0 && sm::quantize(0x1p-40f) == 1);
  CHECK(sm::scaled_draw((uint64_t{1} << 53) - 1, ~uint64_t{0} >> 1) == (uint64_t{1} << 63) - 1025);
  CHECK(sm::scaled_draw(0, 12345) == 0 && sm::scaled_draw(uint64_t{1} << 52, 7) == 3);
}

TEST(bad_arguments_are_refused_naming_them) {
  std::vector<float> w = {0.5f, 1.f, 0.f}, logp(1), x = {1.f, NAN, 0.f};
  std::vector<int32_t> tok(1);
  SampleStream st;
  CHECK_THROWS_WITH(sppo::cpu::sample_pick(w.data(), 1, 3, -1, 1.0, &st, tok.data(), logp.data()),
                    "sample_pick: top_k must be >= 0 (got -1)");
  CHECK_THROWS_WITH(sppo::cpu::sample_pick(w.data(), 1, 3, 0, 0.0, &st, tok.data(), logp.data()),
                    "sample_pick: top_p must be in (0, 1] (got 0)");
  CHECK_THROWS_WITH(sppo::cpu::sample_pick(w.data(), 1, 3, 0, 1.5, &st, tok.data(), logp.data()), "top_p must be");
  CHECK_THROWS_WITH(sppo::cpu::sample_pick(w.data(), 1, 3, 0, NAN, &st, tok.data(), logp.data()), "top_p must be");
  CHECK_THROWS_WITH(sppo::cpu::sample_pick(w.data(), 1, 0, 0, 1.0, &st, tok.data(), logp.data()),
                    "sample_pick: vocabulary of 0 tokens");
  w[2] = 1.5f;
  CHECK_THROWS_WITH(sppo::cpu::sample_pick(w.data(), 1, 3, 0, 1.0, &st, tok.data(), logp.data()),
                    "sample_pick: weight 2 of row 0 is 1.5");
  w[2] = NAN;
  CHECK_THROWS_WITH(sppo::cpu::sample_pick(w.data(), 1, 3, 0, 1.0, &st, tok.data(), logp.data()), "weight 2 of row 0");
  w = {1e-13f, 0.f, 1e-20f};
  CHECK_THROWS_WITH(sppo::cpu::sample_pick(w.data(), 1, 3, 0, 1.0, &st, tok.data(), logp.data()),
                    "sample_pick: row 0 has no weight above 2^-40");
  CHECK_THROWS_WITH(sppo::cpu::sample_weights(x.data(), 1, 3, 0.7, w.data()),
                    "non-finite logit (nan) for token 1 of row 0");
  CHECK_THROWS_WITH(sppo::cpu::argmax_rows(x.data(), 1, 3, tok.data()), "for token 1 of row 0");
  x[1] = 2.f;
  CHECK_THROWS_WITH(sppo::cpu::sample_weights(x.data(), 1, 3, 0.0, w.data()),
                    "sample_weights: temperature must be > 0");
  CHECK_THROWS_WITH(sppo::cpu::sample_weights(x.data(), 1, 3, -1.0, w.data()), "temperature must be > 0");
  // An empty vocabulary: nothing to read, so nothing may be read (the row maximum starts at x[0]).
  CHECK_THROWS_WITH(sppo::cpu::sample_weights(x.data(), 1, 0, 0.7, w.data()), "sample_weights: vocabulary of 0 tokens");
  CHECK_THROWS_WITH(sppo::cpu::argmax_rows(x.data(), 1, 0, tok.data()), "argmax_rows: vocabulary of 0 tokens");
  auto be = cpu_backend();
  std::vector<float> none;
  CHECK_THROWS_WITH(be->sample_weights(view(none), 4, 0, 0.7, view(none)), "vocabulary of 0 tokens");
  std::vector<float> w3(3, 1.f), lp(1);
  CHECK_THROWS_WITH(be->sample_weights(view(x, 1), 1, 3, 0.7, view(w3)),
                    "sample_weights: logits has 2 elements, needs 3");
  CHECK_THROWS_WITH(be->sample_weights(view(x), 1, 3, 0.7, view(w3, 1)), "sample_weights: w");
  CHECK_THROWS_WITH(be->argmax_rows(view(x), 1, 3, view(tok, 1)), "argmax_rows: tokens");
  CHECK_THROWS_WITH(be->sample_pick(view(w3, 1), 1, 3, 0, 1.0, &st, view(tok), view(lp)), "sample_pick: w");
  CHECK_THROWS_WITH(be->sample_pick(view(w3), 1, 3, 0, 1.0, nullptr, view(tok), view(lp)),
                    "sample_pick: streams is null");
  CHECK_THROWS_WITH(be->sample_pick(view(w3), 1, 3, 0, 1.0, &st, view(tok), view(lp, 1)), "sample_pick: logp");
  be->sample_pick(view(w3), 1, 3, 0, 1.0, &st, view(tok), view(lp));
  CHECK(tok[0] >= 0 && tok[0] < 3);
}

TEST_MAIN()
