// CPU log-probability kernels against a float64 reference written here, on fresh random inputs:
// forward, backward (reference checked by finite differences, kernel against the reference's
// analytic gradient), in place, bf16, extremes and bad input; the float64 twin the fp64 test
// models use; sizes the backend refuses.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "kernels/logprob.h"
#include "op_testing.h"

using namespace sppo;
using sppo_test::Rng;

namespace {

struct Case {
  int64_t N, V;
  std::vector<float> logits;     // fp32 values (for bf16, already rounded to bf16)
  std::vector<uint16_t> bf16;    // bits, when used
  std::vector<int32_t> labels;
  double max_abs = 0;
};

// Random logits of scale `scale`; labels cover 0, V-1 and ignored rows.
Case make_case(Rng& rng, int64_t N, int64_t V, double scale, bool bf16) {
  Case c;
  c.N = N;
  c.V = V;
  c.logits.resize(N * V);
  for (auto& x : c.logits) {
    float v = static_cast<float>(rng.normal(0, scale));
    if (bf16) v = bf16_to_f32(f32_to_bf16(v));
    x = v;
    c.max_abs = std::max(c.max_abs, std::fabs(double(v)));
  }
  if (bf16) {
    c.bf16.resize(N * V);
    for (size_t i = 0; i < c.bf16.size(); ++i) c.bf16[i] = f32_to_bf16(c.logits[i]);
  }
  c.labels.resize(N);
  for (int64_t n = 0; n < N; ++n) {
    int64_t r = rng.integer(0, 5);
    c.labels[n] = r == 0 ? 0 : r == 1 ? int32_t(V - 1) : r == 2 ? kIgnoreIndex : int32_t(rng.integer(0, V - 1));
  }
  return c;
}

double ref_lse(const double* x, int64_t V) {
  double m = *std::max_element(x, x + V), s = 0;
  for (int64_t v = 0; v < V; ++v) s += std::exp(x[v] - m);
  return m + std::log(s);
}

// f(x) = sum_n g_n * logp(label_n | x_n) in double.
double ref_objective(const std::vector<double>& x, int64_t N, int64_t V, const std::vector<int32_t>& y,
                     const std::vector<double>& g) {
  double f = 0;
  for (int64_t n = 0; n < N; ++n)
    if (y[n] != kIgnoreIndex) f += g[n] * (x[n * V + y[n]] - ref_lse(&x[n * V], V));
  return f;
}

// Analytic gradient of ref_objective: g (onehot - softmax).
std::vector<double> ref_grad(const std::vector<double>& x, int64_t N, int64_t V, const std::vector<int32_t>& y,
                             const std::vector<double>& g) {
  std::vector<double> d(N * V, 0.0);
  for (int64_t n = 0; n < N; ++n) {
    if (y[n] == kIgnoreIndex) continue;
    double l = ref_lse(&x[n * V], V);
    for (int64_t v = 0; v < V; ++v) d[n * V + v] = g[n] * ((v == y[n]) - std::exp(x[n * V + v] - l));
  }
  return d;
}

const void* data_of(const Case& c, DType t) {
  return t == DType::F32 ? static_cast<const void*>(c.logits.data()) : static_cast<const void*>(c.bf16.data());
}

void check_forward(const Case& c, DType t) {
  std::vector<float> tl(c.N, 123.f), lse(c.N, 123.f);
  cpu::logprob_forward(data_of(c, t), t, c.N, c.V, c.labels.data(), tl.data(), lse.data());
  const double atol = 2e-5 + 4e-7 * c.max_abs;
  for (int64_t n = 0; n < c.N; ++n) {
    std::vector<double> row(c.logits.begin() + n * c.V, c.logits.begin() + (n + 1) * c.V);
    double l = ref_lse(row.data(), c.V);
    CHECK_CLOSE(lse[n], l, atol, 1e-6);
    double want = c.labels[n] == kIgnoreIndex ? 0.0 : row[c.labels[n]] - l;
    CHECK_CLOSE(tl[n], want, atol, 1e-6);
  }
}

void check_backward(Rng& rng, const Case& c, DType t, DType gt, bool pass_lse) {
  std::vector<double> x(c.logits.begin(), c.logits.end()), g(c.N);
  std::vector<float> gf(c.N);
  for (int64_t n = 0; n < c.N; ++n) gf[n] = static_cast<float>(rng.normal(0, 2)), g[n] = gf[n];
  std::vector<double> want = ref_grad(x, c.N, c.V, c.labels, g);
  std::vector<float> tl(c.N), lse(c.N);
  cpu::logprob_forward(data_of(c, t), t, c.N, c.V, c.labels.data(), tl.data(), lse.data());
  std::vector<float> out32(c.N * c.V, 7.f);
  std::vector<uint16_t> out16(c.N * c.V, 7);
  void* out = gt == DType::F32 ? static_cast<void*>(out32.data()) : static_cast<void*>(out16.data());
  cpu::logprob_backward(data_of(c, t), t, c.N, c.V, c.labels.data(), gf.data(), pass_lse ? lse.data() : nullptr,
                        out, gt);
  const double rtol = gt == DType::F32 ? 1e-5 : 8e-3;
  for (int64_t n = 0; n < c.N; ++n) {
    const double atol = std::fabs(g[n]) * (2e-6 + 4e-7 * c.max_abs) + 1e-30;
    for (int64_t v = 0; v < c.V; ++v) {
      double got = gt == DType::F32 ? out32[n * c.V + v] : bf16_to_f32(out16[n * c.V + v]);
      CHECK_CLOSE(got, want[n * c.V + v], atol, rtol);
    }
  }
}

}  // namespace

TEST(forward_matches_float64_reference) {
  Rng rng(1);
  const int64_t shapes[][2] = {{1, 1}, {5, 1}, {7, 2}, {13, 31}, {4, 1000}, {3, 4099}};
  for (auto& s : shapes)
    for (double scale : {0.5, 4.0}) {
      Case c = make_case(rng, s[0], s[1], scale, false);
      check_forward(c, DType::F32);
    }
}

TEST(forward_bf16_input) {
  Rng rng(2);
  for (int64_t V : {1, 3, 257, 5000}) {
    Case c = make_case(rng, 6, V, 3.0, true);
    check_forward(c, DType::BF16);
  }
}

// A trained model's rows are peaked: one logit far above the rest (p ~ 0.99). With V = 128256 the
// lane holding the maximum adds thousands of terms below its ulp; the lse must keep them (it came
// out 1.2e-5 low before the float lanes were moved into doubles every block).
TEST(peaked_rows_of_a_large_vocabulary_keep_their_small_terms) {
  Rng rng(5);
  const int64_t V = 128256;
  for (bool bf16 : {false, true}) {
    Case c = make_case(rng, 5, V, 4.0, bf16);
    const int64_t at[] = {0, 7, 8, V / 2 + 3, V - 1};
    for (int64_t n = 0; n < c.N; ++n) {
      c.logits[n * V + at[n]] = 24.f;
      if (bf16) c.bf16[n * V + at[n]] = f32_to_bf16(24.f);
    }
    std::vector<float> tl(c.N), lse(c.N);
    cpu::logprob_forward(data_of(c, bf16 ? DType::BF16 : DType::F32), bf16 ? DType::BF16 : DType::F32, c.N, V,
                         c.labels.data(), tl.data(), lse.data());
    for (int64_t n = 0; n < c.N; ++n) {
      std::vector<double> row(c.logits.begin() + n * V, c.logits.begin() + (n + 1) * V);
      // 2 ulp of 24 in float: the rounding of mx + log(sum), and the sum's own error.
      CHECK_CLOSE(lse[n], ref_lse(row.data(), V), 4e-6, 0);
    }
  }
}

TEST(forward_extreme_logits) {
  Rng rng(3);
  for (bool bf : {false, true}) {
    Case c = make_case(rng, 9, 300, 1.0, bf);
    for (size_t i = 0; i < c.logits.size(); ++i) {
      float v = static_cast<float>(rng.uniform(-1e4, 1e4));
      if (i % 7 == 0) v = (i % 2) ? 1e4f : -1e4f;
      if (bf) v = bf16_to_f32(f32_to_bf16(v)), c.bf16[i] = f32_to_bf16(v);
      c.logits[i] = v;
    }
    c.max_abs = 1e4;
    check_forward(c, bf ? DType::BF16 : DType::F32);
  }
  // V = 1: the only label has probability 1 whatever the logit.
  float one[3] = {1e4f, -1e4f, 0.25f};
  int32_t y[3] = {0, 0, 0};
  float tl[3], lse[3];
  cpu::logprob_forward(one, DType::F32, 3, 1, y, tl, lse);
  for (int i = 0; i < 3; ++i) {
    CHECK(tl[i] == 0.f);
    CHECK(lse[i] == one[i]);
  }
}

TEST(every_token_ignored) {
  Rng rng(4);
  Case c = make_case(rng, 5, 64, 2.0, false);
  std::fill(c.labels.begin(), c.labels.end(), kIgnoreIndex);
  std::vector<float> tl(5, 9.f), g(5), grad(5 * 64, 9.f);
  for (auto& v : g) v = static_cast<float>(rng.normal());
  cpu::logprob_forward(c.logits.data(), DType::F32, 5, 64, c.labels.data(), tl.data(), nullptr);
  for (float v : tl) CHECK(v == 0.f);
  cpu::logprob_backward(c.logits.data(), DType::F32, 5, 64, c.labels.data(), g.data(), nullptr, grad.data(), DType::F32);
  for (float v : grad) CHECK(v == 0.f);
}

TEST(reference_gradient_matches_finite_differences) {
  Rng rng(5);
  const int64_t N = 4, V = 37;
  Case c = make_case(rng, N, V, 2.0, false);
  std::vector<double> x(c.logits.begin(), c.logits.end()), g(N);
  for (auto& v : g) v = rng.normal();
  std::vector<double> d = ref_grad(x, N, V, c.labels, g);
  const double h = 1e-5;
  for (int64_t i = 0; i < N * V; ++i) {
    std::vector<double> xp = x, xm = x;
    xp[i] += h;
    xm[i] -= h;
    double fd = (ref_objective(xp, N, V, c.labels, g) - ref_objective(xm, N, V, c.labels, g)) / (2 * h);
    CHECK_CLOSE(d[i], fd, 1e-7, 1e-6);
  }
}

TEST(backward_matches_reference) {
  Rng rng(6);
  const int64_t shapes[][2] = {{1, 1}, {6, 1}, {5, 17}, {8, 1000}, {3, 3001}};
  for (auto& s : shapes) {
    Case c = make_case(rng, s[0], s[1], 3.0, false);
    check_backward(rng, c, DType::F32, DType::F32, true);
    check_backward(rng, c, DType::F32, DType::F32, false);
    check_backward(rng, c, DType::F32, DType::BF16, true);
    Case b = make_case(rng, s[0], s[1], 3.0, true);
    check_backward(rng, b, DType::BF16, DType::F32, true);
    check_backward(rng, b, DType::BF16, DType::BF16, false);
  }
  Case e = make_case(rng, 4, 200, 1.0, false);
  for (auto& v : e.logits) v = static_cast<float>(rng.uniform(-1e4, 1e4));
  e.max_abs = 1e4;
  check_backward(rng, e, DType::F32, DType::F32, true);
}

TEST(backward_in_place_equals_out_of_place) {
  Rng rng(7);
  for (DType t : {DType::F32, DType::BF16}) {
    Case c = make_case(rng, 7, 777, 3.0, t == DType::BF16);
    std::vector<float> g(c.N), lse(c.N), tl(c.N);
    for (auto& v : g) v = static_cast<float>(rng.normal());
    cpu::logprob_forward(data_of(c, t), t, c.N, c.V, c.labels.data(), tl.data(), lse.data());
    for (bool use_lse : {true, false}) {
      Case work = c;
      if (t == DType::F32) {
        std::vector<float> out(c.N * c.V);
        cpu::logprob_backward(c.logits.data(), t, c.N, c.V, c.labels.data(), g.data(), use_lse ? lse.data() : nullptr,
                              out.data(), t);
        cpu::logprob_backward(work.logits.data(), t, c.N, c.V, c.labels.data(), g.data(),
                              use_lse ? lse.data() : nullptr, work.logits.data(), t);
        CHECK(std::memcmp(out.data(), work.logits.data(), out.size() * 4) == 0);
      } else {
        std::vector<uint16_t> out(c.N * c.V);
        cpu::logprob_backward(c.bf16.data(), t, c.N, c.V, c.labels.data(), g.data(), use_lse ? lse.data() : nullptr,
                              out.data(), t);
        cpu::logprob_backward(work.bf16.data(), t, c.N, c.V, c.labels.data(), g.data(), use_lse ? lse.data() : nullptr,
                              work.bf16.data(), t);
        CHECK(std::memcmp(out.data(), work.bf16.data(), out.size() * 2) == 0);
      }
    }
  }
}

TEST(masked_sequence_sum_matches_reference) {
  Rng rng(8);
  const int64_t shapes[][2] = {{1, 1}, {4, 1}, {3, 9}, {16, 257}};
  for (auto& s : shapes) {
    int64_t B = s[0], T = s[1];
    std::vector<float> tl(B * T);
    std::vector<uint8_t> mask(B * T);
    for (int64_t i = 0; i < B * T; ++i) {
      tl[i] = static_cast<float>(-rng.uniform(0, 20));
      mask[i] = static_cast<uint8_t>(rng.integer(0, 1));
    }
    if (B > 1) std::fill(mask.begin(), mask.begin() + T, 0);  // a fully masked sequence
    std::vector<float> out(B, 5.f);
    cpu::masked_sequence_sum(tl.data(), mask.data(), B, T, out.data());
    for (int64_t b = 0; b < B; ++b) {
      double want = 0;
      for (int64_t t = 0; t < T; ++t) want += mask[b * T + t] ? double(tl[b * T + t]) : 0.0;
      CHECK_CLOSE(out[b], want, 1e-5, 1e-6);
    }
    if (B > 1) CHECK(out[0] == 0.f);
  }
}

TEST(bad_input_throws_naming_the_field) {
  Rng rng(9);
  Case c = make_case(rng, 4, 10, 1.0, false);
  std::vector<float> tl(4), g(4, 1.f), out(40);
  auto fwd = [&] { cpu::logprob_forward(c.logits.data(), DType::F32, 4, 10, c.labels.data(), tl.data(), nullptr); };
  c.labels[2] = 10;
  CHECK_THROWS_WITH(fwd(), "labels[2] = 10");
  c.labels[2] = -1;
  CHECK_THROWS_WITH(fwd(), "labels[2] = -1");
  c.labels[2] = -101;
  CHECK_THROWS_WITH(fwd(), "labels[2]");
  c.labels[2] = 3;
  c.logits[3 * 10 + 4] = NAN;
  CHECK_THROWS_WITH(fwd(), "logits[3, 4] is not finite");
  c.logits[3 * 10 + 4] = -INFINITY;
  CHECK_THROWS_WITH(fwd(), "logits[3, 4] is not finite");
  c.labels[3] = 1;  // backward reads only rows that are not ignored
  CHECK_THROWS_WITH(cpu::logprob_backward(c.logits.data(), DType::F32, 4, 10, c.labels.data(), g.data(), nullptr,
                                          out.data(), DType::F32),
                    "logits[3, 4]");
  c.logits[3 * 10 + 4] = 0.5f;
  g[1] = INFINITY;
  c.labels[1] = 0;
  CHECK_THROWS_WITH(cpu::logprob_backward(c.logits.data(), DType::F32, 4, 10, c.labels.data(), g.data(), nullptr,
                                          out.data(), DType::F32),
                    "grad_token[1]");
  g[1] = 1.f;
  CHECK_THROWS_WITH(cpu::logprob_backward(c.logits.data(), DType::F32, 4, 10, c.labels.data(), g.data(), nullptr,
                                          c.logits.data(), DType::BF16),
                    "in-place");
  CHECK_THROWS_WITH(cpu::logprob_forward(c.logits.data(), DType::F32, 4, 0, c.labels.data(), tl.data(), nullptr), "V must be");
  CHECK_THROWS_WITH(cpu::logprob_forward(c.logits.data(), DType::F64, 4, 10, c.labels.data(), tl.data(), nullptr),
                    "logits dtype");
  std::vector<uint8_t> mask = {1, 0, 2, 1};
  std::vector<float> seq(2);
  CHECK_THROWS_WITH(cpu::masked_sequence_sum(tl.data(), mask.data(), 2, 2, seq.data()), "mask[1, 0] = 2");
  mask[2] = 1;
  tl[3] = NAN;
  CHECK_THROWS_WITH(cpu::masked_sequence_sum(tl.data(), mask.data(), 2, 2, seq.data()), "token_logp[1, 1]");
}

TEST(float64_twin_matches_the_reference) {
  Rng rng(10);
  const int64_t shapes[][2] = {{1, 1}, {5, 17}, {3, 1001}};
  for (auto& s : shapes) {
    const int64_t N = s[0], V = s[1];
    const Case c = make_case(rng, N, V, 3.0, false);
    std::vector<double> x(N * V), g(N);
    for (auto& v : x) v = rng.normal(0, 3);
    for (auto& v : g) v = rng.normal();
    auto tl = sppo_test::poisoned<double>(N), lse = sppo_test::poisoned<double>(N);
    cpu::logprob_forward_f64(x.data(), N, V, c.labels.data(), tl.data(), lse.data());
    for (int64_t n = 0; n < N; ++n) {
      const double l = ref_lse(&x[n * V], V);
      CHECK_CLOSE(lse[n], l, 1e-13, 1e-13);
      CHECK_CLOSE(tl[n], c.labels[n] == kIgnoreIndex ? 0.0 : x[n * V + c.labels[n]] - l, 1e-12, 1e-12);
    }
    const auto want = ref_grad(x, N, V, c.labels, g);
    for (bool use_lse : {true, false}) {
      auto d = sppo_test::poisoned<double>(N * V);
      cpu::logprob_backward_f64(x.data(), N, V, c.labels.data(), g.data(), use_lse ? lse.data() : nullptr, d.data());
      CHECK(sppo_test::count_off("grad", d, want, 1e-12, 1e-15) == 0);
      auto inplace = x;  // backward may write over the logits
      cpu::logprob_backward_f64(inplace.data(), N, V, c.labels.data(), g.data(), use_lse ? lse.data() : nullptr,
                                inplace.data());
      CHECK(inplace == d);
    }
  }
}

TEST(sizes_are_checked_naming_the_argument) {
  auto be = sppo_test::cpu_backend();
  using sppo_test::view;
  std::vector<float> x(3 * 4, 0.f), tl(3), lse(3), g(3, 1.f), d(12);
  std::vector<int32_t> y = {0, 3, kIgnoreIndex};
  CHECK_THROWS_WITH(be->logprob_forward(view(x, 1), 3, 4, view(y), view(tl), view(lse)),
                    "logprob_forward: logits has 11 elements, needs 12");
  CHECK_THROWS_WITH(be->logprob_forward(view(x), 3, 4, view(y, 1), view(tl), view(lse)), "logprob_forward: labels");
  CHECK_THROWS_WITH(be->logprob_forward(view(x), 3, 4, view(y), view(tl, 1), view(lse)), "logprob_forward: token_logp");
  CHECK_THROWS_WITH(be->logprob_forward(view(x), 3, 4, view(y), view(tl), view(lse, 1)), "logprob_forward: lse");
  CHECK_THROWS_WITH(be->logprob_backward(view(x), 3, 4, view(y), view(g, 1), view(lse), view(d)),
                    "logprob_backward: grad_token");
  CHECK_THROWS_WITH(be->logprob_backward(view(x), 3, 4, view(y), view(g), view(lse), view(d, 1)),
                    "logprob_backward: grad_logits");
  std::vector<double> xd(12, 0.0);
  CHECK_THROWS_WITH(be->logprob_forward(view(xd), 3, 4, view(y), view(tl), sppo::Tensor()),
                    "logprob_forward: token_logp must be F64");
  be->logprob_forward(view(x), 3, 4, view(y), view(tl), sppo::Tensor());  // lse is optional
  CHECK_CLOSE(tl[0], -std::log(4.0), 1e-6, 0);
}

TEST_MAIN()
