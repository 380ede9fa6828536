// CUDA causal attention (kernels/cuda/attention.cu) against the CPU backend, forward (out, lse) and
// backward (dq, dk, dv) on fresh random inputs: MHA, GQA (groups 2, 3 and 4) and MQA; head dims
// 32, 64, 128, 256 and ones the tiles must pad (8, 33, 80); T not a multiple of the tiles (1, 2,
// 31..33, 40, 45, 63..65, 70, 77) and long ones that fold many key tiles (270, 280); right-, left-,
// fully and hole-padded sequences in one batch and each alone; F32 and BF16 (BF16 inputs are
// rounded first, so the CPU computes on the values the GPU holds); tensors at aligned (16-byte
// loads) and unaligned (element loads) offsets; outputs poisoned with NaN before each call.
// Padding rows must come back as exact zeros (lse 0), padding keys' dk/dv exact zeros, and two
// runs give the same bits. Bad shapes, types and sizes are refused with the CPU backend's messages.
// Skips (exit 77) without a CUDA backend or device.
//
// Tolerances: both sides are float32 but add in different orders (the CPU in key order, CUDA in
// tiles with fused multiply-adds) and use different exp/log; the difference of each value is
// bounded by K * its magnitude (attention_bounds in attention_reference.h: the sum of the absolute
// terms it is made of, weighted by how far a score's error travels), with
// K = (8 * head_dim + 4 * T) * 2^-24, a linear rounding bound over the dot products and the sums
// over keys. Exact zeros have magnitude 0 and must match exactly. BF16 outputs add their own
// rounding, 2^-8 relative, and their atol grows by 2^-8 (the rounding of a value already off by
// atol); lse is F32 in both modes.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "attention_reference.h"
#include "backend/backend.h"
#include "backend_testing.h"
#include "cuda_compare.h"
#include "testing.h"

using namespace sppo;
using sppo_test::Dev;
using sppo_test::Rng;

#ifdef SPPO_WITH_CUDA
namespace {

enum class Pad { None, Right, Left, Full, Holes };

// Sequence b of the batch gets pattern pads[b % pads.size()].
std::vector<uint8_t> make_mask(Rng& rng, int64_t B, int64_t T, const std::vector<Pad>& pads) {
  std::vector<uint8_t> m(static_cast<size_t>(B * T), 1);
  for (int64_t b = 0; b < B; ++b) {
    const Pad p = pads[static_cast<size_t>(b) % pads.size()];
    const int64_t L = T > 1 ? rng.integer(1, T - 1) : 1;  // real tokens of a padded sequence
    for (int64_t t = 0; t < T; ++t) {
      uint8_t& x = m[static_cast<size_t>(b * T + t)];
      switch (p) {
        case Pad::None: break;
        case Pad::Right: x = t < L; break;
        case Pad::Left: x = t >= T - L; break;
        case Pad::Full: x = 0; break;
        case Pad::Holes: x = rng.uniform() < 0.7; break;
      }
    }
  }
  return m;
}

std::vector<double> f64(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// atol[i] = K * magnitude[i].
std::vector<double> tol_of(const std::vector<double>& mag, double K) {
  std::vector<double> t(mag.size());
  for (size_t i = 0; i < mag.size(); ++i) t[i] = K * mag[i];
  return t;
}

struct Shape {
  int64_t B, T, nh, nkv, hd;
};

void run_case(Rng& rng, const Shape& sh, const std::vector<Pad>& pads, DType dt, int64_t off, bool check_rerun) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const AttnShape s = sppo_test::attn_shape(sh.B, sh.T, sh.nh, sh.nkv, sh.hd);
  const int64_t N = s.B * s.T, qw = s.nh * s.hd, kw = s.nkv * s.hd;
  const bool bf16 = dt == DType::BF16;
  auto input = [&](int64_t n) {
    std::vector<float> x = sppo_test::randn_f32(rng, n);
    return bf16 ? sppo_test::round_bf16(x) : x;
  };
  const std::vector<float> q = input(N * qw), k = input(N * kw), v = input(N * kw), dout = input(N * qw);
  const std::vector<uint8_t> mask = make_mask(rng, s.B, s.T, pads);
  const double out_rtol = bf16 ? std::ldexp(1.0, -8) : 0.0;
  const int64_t hd_pad = s.hd <= 32 ? 32 : s.hd <= 64 ? 64 : s.hd <= 128 ? 128 : 256;
  const double K = double(8 * hd_pad + 4 * s.T) * std::ldexp(1.0, -24) * (1 + out_rtol);
  const sppo_test::AttnBounds bound = sppo_test::attention_bounds(s, f64(q), f64(k), f64(v), mask, f64(dout));
  char what[160];
  auto name = [&](const char* t) {
    std::snprintf(what, sizeof what, "%s (B=%lld T=%lld heads %lld/%lld hd=%lld %s off=%lld)", t, (long long)s.B,
                  (long long)s.T, (long long)s.nh, (long long)s.nkv, (long long)s.hd, dtype_name(dt), (long long)off);
    return what;
  };

  // forward
  Dev cq(cpu, q, DType::F32), ck(cpu, k, DType::F32), cv(cpu, v, DType::F32), cm(cpu, mask, DType::U8);
  Dev cout_(cpu, N * qw, DType::F32), clse(cpu, N * s.nh, DType::F32);
  cpu->attention_forward(s, cq.t(), ck.t(), cv.t(), cm.t(), cout_.t(), clse.t());
  Dev gq = sppo_test::dev_as(gpu, q, dt, off), gk = sppo_test::dev_as(gpu, k, dt, off + 1);
  Dev gv = sppo_test::dev_as(gpu, v, dt, off + 2), gm(gpu, mask, DType::U8, off + 3);
  Dev gout(gpu, N * qw, dt, off), glse(gpu, N * s.nh, DType::F32, off + 1);
  gpu->attention_forward(s, gq.t(), gk.t(), gv.t(), gm.t(), gout.t(), glse.t());
  gpu->synchronize();
  const std::vector<float> out = cout_.get<float>(), lse = clse.get<float>();
  const std::vector<float> got_out = sppo_test::floats_of(gout, dt), got_lse = glse.get<float>();
  sppo_test::expect_close(name("out"), got_out, out, tol_of(bound.out, K), out_rtol);
  sppo_test::expect_close(name("lse"), got_lse, lse, tol_of(bound.lse, K), 0.0);

  // backward, from the CPU's out (as the GPU stores it) and lse on both sides
  const std::vector<float> out_in = bf16 ? sppo_test::round_bf16(out) : out;
  Dev cout2(cpu, out_in, DType::F32), cdo(cpu, dout, DType::F32);
  Dev cdq(cpu, N * qw, DType::F32), cdk(cpu, N * kw, DType::F32), cdv(cpu, N * kw, DType::F32);
  cpu->attention_backward(s, cq.t(), ck.t(), cv.t(), cm.t(), cout2.t(), clse.t(), cdo.t(), cdq.t(), cdk.t(), cdv.t());
  Dev gout2 = sppo_test::dev_as(gpu, out_in, dt, off + 1), glse2(gpu, lse, DType::F32, off + 2);
  Dev gdo = sppo_test::dev_as(gpu, dout, dt, off + 3);
  std::vector<float> first[3];
  for (int run = 0; run < (check_rerun ? 2 : 1); ++run) {
    Dev gdq(gpu, N * qw, dt, off + 2), gdk(gpu, N * kw, dt, off + 3), gdv(gpu, N * kw, dt, off);
    gpu->attention_backward(s, gq.t(), gk.t(), gv.t(), gm.t(), gout2.t(), glse2.t(), gdo.t(), gdq.t(), gdk.t(),
                            gdv.t());
    gpu->synchronize();
    const std::vector<float> got[3] = {sppo_test::floats_of(gdq, dt), sppo_test::floats_of(gdk, dt),
                                       sppo_test::floats_of(gdv, dt)};
    if (run == 0) {
      sppo_test::expect_close(name("dq"), got[0], cdq.get<float>(), tol_of(bound.dq, K), out_rtol);
      sppo_test::expect_close(name("dk"), got[1], cdk.get<float>(), tol_of(bound.dk, K), out_rtol);
      sppo_test::expect_close(name("dv"), got[2], cdv.get<float>(), tol_of(bound.dv, K), out_rtol);
      for (int i = 0; i < 3; ++i) first[i] = got[i];
    } else {
      sppo_test::expect_same_bits(name("rerun dq"), got[0], first[0]);
      sppo_test::expect_same_bits(name("rerun dk"), got[1], first[1]);
      sppo_test::expect_same_bits(name("rerun dv"), got[2], first[2]);
    }
  }
  if (check_rerun) {  // the forward too
    Dev gout3(gpu, N * qw, dt, off), glse3(gpu, N * s.nh, DType::F32, off + 1);
    gpu->attention_forward(s, gq.t(), gk.t(), gv.t(), gm.t(), gout3.t(), glse3.t());
    gpu->synchronize();
    sppo_test::expect_same_bits(name("rerun out"), sppo_test::floats_of(gout3, dt), got_out);
    sppo_test::expect_same_bits(name("rerun lse"), glse3.get<float>(), got_lse);
  }
}

// Every pattern in one batch: a right- and a left-padded sequence, a fully padded one, one with
// padding holes (padded rows between real ones) and an unpadded one.
const std::vector<Pad> kMixed = {Pad::Right, Pad::Left, Pad::Full, Pad::Holes, Pad::None};

}  // namespace

// Sizes are kept small: gpu-check.sh runs this suite under compute-sanitizer's memcheck and
// racecheck too. Each shape spans at least two tiles of its head dim (forward tiles are 64 rows
// at head dims 32 and 64, 32 at 128 and 256; backward 64, 32, 32 and 16 key rows).
TEST(mha_and_gqa_match_the_cpu_at_every_head_dim) {
  Rng rng(301);
  const Shape shapes[] = {
      {5, 70, 2, 2, 32},  {5, 70, 2, 1, 64}, {5, 45, 2, 1, 128}, {5, 40, 1, 1, 256},
      {5, 70, 4, 1, 8},   {5, 70, 3, 1, 33}, {5, 40, 4, 4, 80},
  };
  int k = 0;
  for (const Shape& sh : shapes) {
    // Each dtype once per shape, aligned (16-byte loads where head_dim allows) and unaligned
    // (element loads) in turn.
    run_case(rng, sh, kMixed, DType::F32, k % 2 ? 1 + k % 3 : 0, k == 0);
    run_case(rng, sh, kMixed, DType::BF16, k % 2 ? 0 : 1 + k % 3, false);
    ++k;
  }
}

TEST(tiny_and_tile_edge_lengths) {
  Rng rng(302);
  int k = 0;
  for (int64_t T : {1, 2, 31, 32, 33, 63, 64, 65}) {
    run_case(rng, {2, T, 2, 1, 64}, {Pad::None, Pad::Left}, k % 2 ? DType::BF16 : DType::F32, 0, false);
    ++k;
  }
}

TEST(one_sequence_of_each_padding) {
  Rng rng(303);
  int k = 0;
  for (Pad p : {Pad::None, Pad::Right, Pad::Left, Pad::Full, Pad::Holes}) {
    run_case(rng, {1, 77, 2, 1, 128}, {p}, k % 2 ? DType::BF16 : DType::F32, 0, false);
    ++k;
  }
}

// Long enough for the online softmax to fold many key tiles (5 and 9 of them), run twice: the
// same bits.
TEST(a_long_sequence_matches_the_cpu_and_is_deterministic) {
  Rng rng(304);
  run_case(rng, {2, 270, 2, 1, 64}, {Pad::None, Pad::Right}, DType::F32, 0, true);
  run_case(rng, {1, 280, 2, 2, 128}, {Pad::Left}, DType::BF16, 0, true);
}

TEST(bad_shapes_types_and_sizes_are_refused_like_the_cpu) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const AttnShape s = sppo_test::attn_shape(2, 3, 4, 2, 8);
  const int64_t N = 6, qw = 32, kw = 16;
  auto call = [&](const std::shared_ptr<Backend>& be, const AttnShape& sh, int64_t out_n, DType lse_dt) {
    Dev q(be, N * qw, DType::F32), k(be, N * kw, DType::F32), v(be, N * kw, DType::F32);
    Dev m(be, std::vector<uint8_t>(N, 1), DType::U8), out(be, out_n, DType::F32), lse(be, N * 4, lse_dt);
    be->attention_forward(sh, q.t(), k.t(), v.t(), m.t(), out.t(), lse.t());
    be->synchronize();
  };
  AttnShape bad = s;
  bad.nkv = 3;
  sppo_test::expect_same_error("nh % nkv", sppo_test::message_of([&] { call(cpu, bad, N * qw, DType::F32); }),
                               sppo_test::message_of([&] { call(gpu, bad, N * qw, DType::F32); }));
  bad = s;
  bad.hd = 0;
  sppo_test::expect_same_error("head_dim 0", sppo_test::message_of([&] { call(cpu, bad, N * qw, DType::F32); }),
                               sppo_test::message_of([&] { call(gpu, bad, N * qw, DType::F32); }));
  sppo_test::expect_same_error("short out", sppo_test::message_of([&] { call(cpu, s, N * qw - 1, DType::F32); }),
                               sppo_test::message_of([&] { call(gpu, s, N * qw - 1, DType::F32); }));
  CHECK_THROWS_WITH(call(gpu, s, N * qw, DType::BF16), "attention_forward: lse must be F32 (got BF16)");
  {
    Dev q(gpu, N * qw, DType::F64);
    Dev k(gpu, N * kw, DType::F32), v(gpu, N * kw, DType::F32), m(gpu, N, DType::U8), out(gpu, N * qw, DType::F32);
    Dev lse(gpu, N * 4, DType::F32);
    CHECK_THROWS_WITH(gpu->attention_forward(s, q.t(), k.t(), v.t(), m.t(), out.t(), lse.t()),
                      "attention_forward: the CUDA backend computes in F32, BF16 or F16 (got F64)");
  }
  {
    AttnShape big = sppo_test::attn_shape(1, 2, 1, 1, 264);
    Dev q(gpu, 2 * 264, DType::F32), k(gpu, 2 * 264, DType::F32), v(gpu, 2 * 264, DType::F32);
    Dev m(gpu, std::vector<uint8_t>(2, 1), DType::U8), out(gpu, 2 * 264, DType::F32), lse(gpu, 2, DType::F32);
    CHECK_THROWS_WITH(gpu->attention_forward(big, q.t(), k.t(), v.t(), m.t(), out.t(), lse.t()),
                      "attention_forward: head_dim 264 is above the CUDA kernels' limit of 256");
  }
  // backward: a short dk
  auto back = [&](const std::shared_ptr<Backend>& be, int64_t dk_n) {
    Dev q(be, N * qw, DType::F32), k(be, N * kw, DType::F32), v(be, N * kw, DType::F32);
    Dev m(be, std::vector<uint8_t>(N, 1), DType::U8), out(be, N * qw, DType::F32), lse(be, N * 4, DType::F32);
    Dev dout(be, N * qw, DType::F32), dq(be, N * qw, DType::F32), dk(be, dk_n, DType::F32), dv(be, N * kw, DType::F32);
    be->attention_backward(s, q.t(), k.t(), v.t(), m.t(), out.t(), lse.t(), dout.t(), dq.t(), dk.t(), dv.t());
    be->synchronize();
  };
  sppo_test::expect_same_error("short dk", sppo_test::message_of([&] { back(cpu, N * kw - 2); }),
                               sppo_test::message_of([&] { back(gpu, N * kw - 2); }));
}

#endif

TEST_MAIN_CUDA()
