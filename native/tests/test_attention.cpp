// Causal attention over a padded batch (kernels/attention.h) against a float64 reference written
// here: out and lse for full, left-padded, right-padded and fully padded sequences, with grouped
// kv heads (GQA/MQA) and head dims on the AVX2 path (multiples of 8) and off it; the backward's
// dq, dk, dv against central finite differences of the reference; a sequence's rows bitwise the
// same whether it is padded on the left or on the right; shapes the backend refuses by name.
// Outputs start as NaN.
#include <cmath>
#include <cstring>
#include <vector>

#include "attention_reference.h"
#include "kernels/attention.h"
#include "op_testing.h"

using namespace sppo_test;
using sppo::AttnShape;

namespace {

enum class Pad { None, Left, Right, All };

// mask [B*T]: sequence b gets pads[b % pads.size()].
std::vector<uint8_t> make_mask(Rng& rng, const AttnShape& s, const std::vector<Pad>& pads) {
  std::vector<uint8_t> m(s.B * s.T, 1);
  for (int64_t b = 0; b < s.B; ++b) {
    const Pad p = pads[b % pads.size()];
    const int64_t n = s.T > 1 ? rng.integer(1, s.T - 1) : 0;  // pads, leaving at least one real token
    for (int64_t t = 0; t < s.T; ++t) {
      uint8_t& x = m[b * s.T + t];
      if (p == Pad::All) x = 0;
      else if (p == Pad::Left) x = t >= n;
      else if (p == Pad::Right) x = t < s.T - n;
    }
  }
  return m;
}

// B, T, heads / kv heads, head_dim: hd 1, 3, 4, 12 take the portable loops, 8 and 16 the AVX2 path.
const AttnShape kShapes[] = {attn_shape(1, 1, 1, 1, 1), attn_shape(2, 5, 2, 2, 3),  attn_shape(3, 9, 4, 2, 4),
                             attn_shape(3, 17, 4, 1, 8), attn_shape(3, 9, 6, 3, 16), attn_shape(2, 21, 2, 2, 12)};
const std::vector<Pad> kPads = {Pad::None, Pad::Left, Pad::Right};

template <typename T>
struct Inputs {
  std::vector<T> q, k, v;
  std::vector<uint8_t> mask;
};

template <typename T>
Inputs<T> make_inputs(Rng& rng, const AttnShape& s, const std::vector<Pad>& pads) {
  Inputs<T> in{randn<T>(rng, s.B * s.T * s.nh * s.hd), randn<T>(rng, s.B * s.T * s.nkv * s.hd),
               randn<T>(rng, s.B * s.T * s.nkv * s.hd), make_mask(rng, s, pads)};
  return in;
}

template <typename T>
void check_forward(uint64_t salt) {
  Rng rng(salt);
  for (const AttnShape& s : kShapes)
    for (const auto& pads : {kPads, std::vector<Pad>{Pad::Right, Pad::All, Pad::Left}}) {
      const auto in = make_inputs<T>(rng, s, pads);
      auto out = poisoned<T>(s.B * s.T * s.nh * s.hd), lse = poisoned<T>(s.B * s.T * s.nh);
      sppo::cpu::attention_forward(s, in.q.data(), in.k.data(), in.v.data(), in.mask.data(), out.data(), lse.data());
      const AttnRef want = attention_reference(s, to_f64(in.q), to_f64(in.k), to_f64(in.v), in.mask);
      // Dot products of hd terms and sums of up to T terms.
      const double tol = ulps<T>(4 * (s.hd + s.T) + 16);
      CHECK_NEAR_ALL("out", out, want.out, tol);
      CHECK_NEAR_ALL("lse", lse, want.lse, tol);
      for (int64_t row = 0; row < s.B * s.T; ++row)  // padding rows: exactly 0
        if (!in.mask[row])
          for (int64_t h = 0; h < s.nh; ++h) CHECK(lse[row * s.nh + h] == 0);
    }
}

template <typename T>
void check_backward(uint64_t salt) {
  Rng rng(salt);
  for (const AttnShape& s : kShapes) {
    const auto in = make_inputs<T>(rng, s, s.B > 2 ? std::vector<Pad>{Pad::Left, Pad::All, Pad::Right} : kPads);
    const int64_t nq = s.B * s.T * s.nh * s.hd, nk = s.B * s.T * s.nkv * s.hd;
    std::vector<T> out(nq), lse(s.B * s.T * s.nh);
    sppo::cpu::attention_forward(s, in.q.data(), in.k.data(), in.v.data(), in.mask.data(), out.data(), lse.data());
    const auto dout = randn<T>(rng, nq);  // padding rows too: their out is constant 0
    auto dq = poisoned<T>(nq), dk = poisoned<T>(nk), dv = poisoned<T>(nk);
    sppo::cpu::attention_backward(s, in.q.data(), in.k.data(), in.v.data(), in.mask.data(), out.data(), lse.data(),
                                  dout.data(), dq.data(), dk.data(), dv.data());
    // f(q, k, v) = <dout, out(q, k, v)> in float64, differentiated numerically in each input.
    const auto qd = to_f64(in.q), kd = to_f64(in.k), vd = to_f64(in.v), dd = to_f64(dout);
    auto f_q = [&](const std::vector<double>& x) { return dot(dd, attention_reference(s, x, kd, vd, in.mask).out); };
    auto f_k = [&](const std::vector<double>& x) { return dot(dd, attention_reference(s, qd, x, vd, in.mask).out); };
    auto f_v = [&](const std::vector<double>& x) { return dot(dd, attention_reference(s, qd, kd, x, in.mask).out); };
    const double tol = ulps<T>(16 * (s.hd + s.T) + 64) + 1e-6;
    CHECK_NEAR_ALL("dq", dq, numeric_grad(f_q, qd), tol);
    CHECK_NEAR_ALL("dk", dk, numeric_grad(f_k, kd), tol);
    CHECK_NEAR_ALL("dv", dv, numeric_grad(f_v, vd), tol);
  }
}

// One sequence of L real tokens, laid out as sequence 0 padded on the left and sequence 1 padded
// on the right of a [2, T] batch; the pad slots hold large garbage that must not leak in.
template <typename T>
void check_left_equals_right(uint64_t salt) {
  Rng rng(salt);
  for (int64_t hd : {4, 8, 16}) {
    const AttnShape s = attn_shape(2, 13, 4, 2, hd);
    const int64_t L = rng.integer(1, s.T - 1), P = s.T - L, qw = s.nh * hd, kw = s.nkv * hd;
    const auto q0 = randn<T>(rng, L * qw), k0 = randn<T>(rng, L * kw), v0 = randn<T>(rng, L * kw);
    const auto dout0 = randn<T>(rng, L * qw);
    auto q = randn<T>(rng, 2 * s.T * qw, 1e3), k = randn<T>(rng, 2 * s.T * kw, 1e3),
         v = randn<T>(rng, 2 * s.T * kw, 1e3);
    auto dout = randn<T>(rng, 2 * s.T * qw);
    std::vector<uint8_t> mask(2 * s.T, 0);
    const int64_t first[2] = {P, s.T};  // row of token 0 in sequence 0 (left pad) and 1 (right pad)
    for (int seq = 0; seq < 2; ++seq)
      for (int64_t t = 0; t < L; ++t) {
        const int64_t row = first[seq] + t;
        mask[row] = 1;
        std::memcpy(&q[row * qw], &q0[t * qw], qw * sizeof(T));
        std::memcpy(&k[row * kw], &k0[t * kw], kw * sizeof(T));
        std::memcpy(&v[row * kw], &v0[t * kw], kw * sizeof(T));
        std::memcpy(&dout[row * qw], &dout0[t * qw], qw * sizeof(T));
      }
    auto out = poisoned<T>(2 * s.T * qw), lse = poisoned<T>(2 * s.T * s.nh);
    sppo::cpu::attention_forward(s, q.data(), k.data(), v.data(), mask.data(), out.data(), lse.data());
    auto dq = poisoned<T>(2 * s.T * qw), dk = poisoned<T>(2 * s.T * kw), dv = poisoned<T>(2 * s.T * kw);
    sppo::cpu::attention_backward(s, q.data(), k.data(), v.data(), mask.data(), out.data(), lse.data(), dout.data(),
                                  dq.data(), dk.data(), dv.data());
    auto same = [&](const std::vector<T>& x, int64_t w) {
      return std::memcmp(&x[first[0] * w], &x[first[1] * w], L * w * sizeof(T)) == 0;
    };
    CHECK(same(out, qw) && same(lse, s.nh));
    CHECK(same(dq, qw) && same(dk, kw) && same(dv, kw));
    // The pad slots get nothing: zero out, lse, and gradients.
    for (int64_t row = 0; row < 2 * s.T; ++row) {
      if (mask[row]) continue;
      for (int64_t i = 0; i < qw; ++i) CHECK(out[row * qw + i] == 0 && dq[row * qw + i] == 0);
      for (int64_t i = 0; i < kw; ++i) CHECK(dk[row * kw + i] == 0 && dv[row * kw + i] == 0);
    }
  }
}

}  // namespace

TEST(forward_matches_float64_in_float) { check_forward<float>(141); }
TEST(forward_matches_float64_in_double) { check_forward<double>(142); }
TEST(backward_matches_finite_differences_in_float) { check_backward<float>(143); }
TEST(backward_matches_finite_differences_in_double) { check_backward<double>(144); }
TEST(left_and_right_padding_give_bitwise_equal_rows_in_float) { check_left_equals_right<float>(145); }
TEST(left_and_right_padding_give_bitwise_equal_rows_in_double) { check_left_equals_right<double>(146); }

TEST(bad_shapes_and_sizes_are_refused_naming_the_argument) {
  auto be = cpu_backend();
  const AttnShape s = attn_shape(2, 3, 4, 2, 8);
  const int64_t N = 6, qw = 32, kw = 16;
  std::vector<float> q(N * qw, 0.f), k(N * kw, 0.f), v(N * kw, 0.f), out(N * qw), lse(N * 4), dq(N * qw), dk(N * kw),
      dv(N * kw);
  std::vector<uint8_t> mask(N, 1);
  AttnShape bad = s;
  bad.nkv = 3;
  CHECK_THROWS_WITH(be->attention_forward(bad, view(q), view(k), view(v), view(mask), view(out), view(lse)),
                    "attention_forward: bad shape");
  bad = s;
  bad.hd = 0;
  CHECK_THROWS_WITH(be->attention_backward(bad, view(q), view(k), view(v), view(mask), view(out), view(lse), view(q),
                                           view(dq), view(dk), view(dv)),
                    "attention_backward: bad shape");
  CHECK_THROWS_WITH(be->attention_forward(s, view(q, 1), view(k), view(v), view(mask), view(out), view(lse)),
                    "attention_forward: q has 191 elements, needs 192");
  CHECK_THROWS_WITH(be->attention_forward(s, view(q), view(k), view(v, 1), view(mask), view(out), view(lse)),
                    "attention_forward: v");
  CHECK_THROWS_WITH(be->attention_forward(s, view(q), view(k), view(v), view(mask, 1), view(out), view(lse)),
                    "attention_forward: mask");
  CHECK_THROWS_WITH(be->attention_forward(s, view(q), view(k), view(v), view(mask), view(out), view(lse, 1)),
                    "attention_forward: lse");
  std::vector<int32_t> wide(N, 1);
  CHECK_THROWS_WITH(be->attention_forward(s, view(q), view(k), view(v), view(wide), view(out), view(lse)),
                    "attention_forward: mask must be U8");
  be->attention_forward(s, view(q), view(k), view(v), view(mask), view(out), view(lse));
  CHECK_THROWS_WITH(be->attention_backward(s, view(q), view(k), view(v), view(mask), view(out), view(lse), view(q, 1),
                                           view(dq), view(dk), view(dv)),
                    "attention_backward: dout");
  CHECK_THROWS_WITH(be->attention_backward(s, view(q), view(k), view(v), view(mask), view(out), view(lse), view(q),
                                           view(dq), view(dk, 1), view(dv)),
                    "attention_backward: dk");
}

TEST_MAIN()
