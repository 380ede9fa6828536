// DeBERTa's disentangled attention (kernels/disentangled_attention.h) through the CPU backend
// against a float64 reference written here from the contract (every dot product and the softmax
// spelled out), on fresh random packed batches: sequences of length 1 up to past the bucket table,
// random bucket tables (not monotone: the kernel may not assume DeBERTa's shape), every
// combination of the c2p and p2c terms, fp32 and fp64, outputs poisoned with NaN. Then: a sequence
// gives the same bits alone and in a batch, and bad layouts are refused by name.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/backend.h"
#include "testing.h"

using namespace sppo;
using sppo_test::Rng;

namespace {

template <typename T>
Tensor view(std::vector<T>& v) {
  return Tensor(v.data(), sizeof(T) == 4 ? DType::F32 : DType::F64, static_cast<int64_t>(v.size()));
}
Tensor view(std::vector<int32_t>& v) { return Tensor(v.data(), DType::I32, static_cast<int64_t>(v.size())); }

struct Case {
  RelAttnShape s;
  std::vector<int32_t> start, rel;
  std::vector<double> q, k, v, pq, pk;
};

Case make_case(Rng& rng, std::vector<int64_t> lengths, int64_t nh, int64_t hd, int64_t P, bool c2p, bool p2c) {
  Case c;
  c.start.push_back(0);
  int64_t longest = 1;
  for (auto L : lengths) {
    c.start.push_back(c.start.back() + static_cast<int32_t>(L));
    longest = std::max(longest, L);
  }
  const int64_t N = c.start.back(), w = nh * hd;
  c.s.S = static_cast<int64_t>(lengths.size());
  c.s.N = N;
  c.s.nh = nh;
  c.s.hd = hd;
  c.s.P = P;
  c.s.max_len = longest + rng.integer(0, 3);
  c.s.c2p = c2p;
  c.s.p2c = p2c;
  c.s.scale = 1.0 / std::sqrt(double(hd) * (1 + c2p + p2c));
  for (int64_t i = 0; i < 2 * c.s.max_len - 1; ++i) c.rel.push_back(static_cast<int32_t>(rng.integer(0, P - 1)));
  auto fill = [&](std::vector<double>& x, int64_t n) {
    x.resize(n);
    for (auto& e : x) e = rng.normal(0, 1);
  };
  fill(c.q, N * w);
  fill(c.k, N * w);
  fill(c.v, N * w);
  fill(c.pq, P * w);
  fill(c.pk, P * w);
  return c;
}

std::vector<double> reference(const Case& c) {
  const auto& s = c.s;
  const int64_t w = s.nh * s.hd;
  std::vector<double> out(s.N * w, 0.0);
  auto dot = [&](const std::vector<double>& a, int64_t ra, const std::vector<double>& b, int64_t rb, int64_t h) {
    double d = 0;
    for (int64_t e = 0; e < s.hd; ++e) d += a[ra * w + h * s.hd + e] * b[rb * w + h * s.hd + e];
    return d;
  };
  for (int64_t seq = 0; seq < s.S; ++seq) {
    const int64_t r0 = c.start[seq], L = c.start[seq + 1] - r0;
    for (int64_t h = 0; h < s.nh; ++h)
      for (int64_t i = 0; i < L; ++i) {
        std::vector<double> sc(L);
        double mx = -INFINITY;
        for (int64_t j = 0; j < L; ++j) {
          const int64_t d = c.rel[(i - j) + (s.max_len - 1)];
          double x = dot(c.q, r0 + i, c.k, r0 + j, h);
          if (s.c2p) x += dot(c.q, r0 + i, c.pk, d, h);
          if (s.p2c) x += dot(c.k, r0 + j, c.pq, d, h);
          sc[j] = x * s.scale;
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (auto& x : sc) sum += (x = std::exp(x - mx));
        for (int64_t j = 0; j < L; ++j)
          for (int64_t e = 0; e < s.hd; ++e) out[(r0 + i) * w + h * s.hd + e] += sc[j] / sum * c.v[(r0 + j) * w + h * s.hd + e];
      }
  }
  return out;
}

template <typename T>
std::vector<T> run(Case& c) {
  auto be = backend_for(Device::CPU);
  std::vector<T> q(c.q.begin(), c.q.end()), k(c.k.begin(), c.k.end()), v(c.v.begin(), c.v.end());
  std::vector<T> pq(c.pq.begin(), c.pq.end()), pk(c.pk.begin(), c.pk.end());
  std::vector<T> out(c.q.size(), std::numeric_limits<T>::quiet_NaN());
  be->disentangled_attention(c.s, view(q), view(k), view(v), view(pq), view(pk), view(c.rel), view(c.start), view(out));
  return out;
}

template <typename T>
void check_random(uint64_t salt) {
  Rng rng(salt);
  const double tol = sizeof(T) == 4 ? 3e-5 : 1e-12;
  for (int flags = 0; flags < 4; ++flags) {
    const bool c2p = flags & 1, p2c = flags & 2;
    std::vector<int64_t> lengths;
    const int64_t S = rng.integer(1, 5);
    for (int64_t i = 0; i < S; ++i) lengths.push_back(i == 0 ? 1 : rng.integer(1, 70));
    Case c = make_case(rng, lengths, rng.integer(1, 4), rng.integer(1, 2) * 8 + (sizeof(T) == 8 ? 3 : 0),
                       rng.integer(1, 40), c2p, p2c);
    // The reference sees exactly the rounded inputs.
    for (auto* x : {&c.q, &c.k, &c.v, &c.pq, &c.pk})
      for (auto& e : *x) e = static_cast<double>(static_cast<T>(e));
    const auto want = reference(c);
    const auto got = run<T>(c);
    int bad = 0;
    for (size_t i = 0; i < got.size(); ++i)
      if (!(std::fabs(double(got[i]) - want[i]) <= tol * (1 + std::fabs(want[i])))) ++bad;
    if (bad) std::printf("  c2p=%d p2c=%d: %d of %zu off\n", int(c2p), int(p2c), bad, got.size());
    CHECK(bad == 0);
  }
}

}  // namespace

TEST(matches_float64_reference_in_float) { check_random<float>(31); }
TEST(matches_float64_reference_in_double) { check_random<double>(32); }

TEST(a_sequence_gives_the_same_bits_alone_and_in_a_batch) {
  Rng rng(33);
  Case batch = make_case(rng, {5, 40, 17, 1}, 2, 8, 30, true, true);
  const auto all = run<float>(batch);
  const int64_t w = batch.s.nh * batch.s.hd;
  for (int64_t seq = 0; seq < batch.s.S; ++seq) {
    const int64_t r0 = batch.start[seq], L = batch.start[seq + 1] - r0;
    Case one = batch;
    one.s.S = 1;
    one.s.N = L;
    one.start = {0, static_cast<int32_t>(L)};
    auto rows = [&](const std::vector<double>& x) {
      return std::vector<double>(x.begin() + r0 * w, x.begin() + (r0 + L) * w);
    };
    one.q = rows(batch.q);
    one.k = rows(batch.k);
    one.v = rows(batch.v);
    const auto alone = run<float>(one);
    CHECK(std::equal(alone.begin(), alone.end(), all.begin() + r0 * w));
  }
}

TEST(bad_layouts_are_refused_by_name) {
  Rng rng(34);
  Case c = make_case(rng, {3, 4}, 1, 4, 5, true, true);
  c.s.max_len = 8;
  c.rel.assign(15, 1);
  Case bad = c;
  bad.start = {0, 5, 4};
  CHECK_THROWS_WITH(run<float>(bad), "sequence 1 has length -1");
  bad = c;
  bad.start = {0, 3, 6};
  CHECK_THROWS_WITH(run<float>(bad), "start[S] = 6 but N = 7");
  bad = c;
  bad.rel[2] = 5;
  CHECK_THROWS_WITH(run<float>(bad), "rel_index[2] = 5 is outside [0, 5)");
  bad = c;
  bad.s.max_len = 3;
  bad.rel.resize(5);
  CHECK_THROWS_WITH(run<float>(bad), "sequence 1 has length 4 (must be in [0, 3])");
  bad = c;
  bad.rel.resize(3);
  CHECK_THROWS_WITH(run<float>(bad), "rel_index has 3 elements");
}

TEST_MAIN()
