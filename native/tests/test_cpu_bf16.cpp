// The CPU backend's BF16 emulation (backend/half_emulation.h): every op of the table called with
// BF16 tensors (and their F32 companions: statistics, weight gradients, a matmul's F32 C, the
// log-probs' rows) on bf16-rounded random inputs, outputs poisoned with NaN before the call.
// Each call is checked two ways:
// - against the op's float64 reference (written here from the contracts, or attention_reference.h):
//   a BF16 output within half a bf16 ulp (2^-8 relative) of the fp32 result, which is itself
//   within k * 2^-24 of the reference (k: the terms the kernel sums); an F32 output within that
//   fp32 error alone;
// - against the same op run in F32 on the widened inputs: each BF16 output is exactly that run's
//   output rounded once (f32_to_bf16), each F32 output the same bits (the emulation's definition,
//   the CUDA kernels' rounding points). The log-prob kernels, which read BF16 logits themselves,
//   are held to the reference only.
// In-out tensors (matmul and rmsnorm accumulation, rope in place, scatter_add_rows, the KV pools,
// layernorm / bias_act with y = x) are checked with their old contents. An op that throws leaves
// its BF16 outputs as they were. The ops that compute in F32/F64 only refuse BF16 by name. (BF16
// weight gradients, dtable and dw: test_embedding and test_rmsnorm.)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "attention_reference.h"
#include "backend/backend.h"
#include "core/dtype.h"
#include "op_testing.h"
#include "testing.h"

using namespace sppo;
using sppo_test::Rng;

namespace {

enum class Kind { Act, F32, I32, U8 };  // Act: BF16 in the bf16 call, F32 in its fp32 twin
enum class Role { In, Out, InOut };

struct Arg {
  Kind kind;
  Role role;
  std::vector<double> v;    // inputs and in-outs' old values (Act: exact bf16 values)
  std::vector<double> got;  // the bf16 call's result (outputs and in-outs)
  bool empty = false;       // passed as an empty tensor (an optional argument left out)
};

double round_bf16(double x) { return bf16_to_f32(f32_to_bf16(static_cast<float>(x))); }

// n normal draws rounded to bf16 (exact in both calls).
std::vector<double> rbf(Rng& rng, int64_t n, double std = 1.0, double mean = 0.0) {
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) x = round_bf16(rng.normal(mean, std));
  return v;
}
std::vector<double> rf32(Rng& rng, int64_t n, double std = 1.0) {
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal(0, std));
  return v;
}

Arg in(Kind k, std::vector<double> v) { return Arg{k, Role::In, std::move(v), {}}; }
Arg out(Kind k, int64_t n) { return Arg{k, Role::Out, std::vector<double>(static_cast<size_t>(n), 0.0), {}}; }
Arg inout(Kind k, std::vector<double> v) { return Arg{k, Role::InOut, std::move(v), {}}; }
template <typename T>
std::vector<double> d(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// Host memory of one call.
struct Call {
  std::vector<std::vector<uint16_t>> b16;
  std::vector<std::vector<float>> f32;
  std::vector<std::vector<int32_t>> i32;
  std::vector<std::vector<uint8_t>> u8;
  std::vector<Tensor> t;
  explicit Call(const std::vector<Arg>& args, bool bf16) {
    b16.resize(args.size());
    f32.resize(args.size());
    i32.resize(args.size());
    u8.resize(args.size());
    for (size_t i = 0; i < args.size(); ++i) {
      const Arg& a = args[i];
      const int64_t n = static_cast<int64_t>(a.v.size());
      const bool poison = a.role == Role::Out;
      if (a.empty) {
        t.emplace_back();
      } else if (a.kind == Kind::Act && bf16) {
        for (double x : a.v) b16[i].push_back(poison ? uint16_t{0x7fc0} : f32_to_bf16(static_cast<float>(x)));
        t.emplace_back(b16[i].data(), DType::BF16, n);
      } else if (a.kind == Kind::Act || a.kind == Kind::F32) {
        for (double x : a.v) f32[i].push_back(poison ? NAN : static_cast<float>(x));
        t.emplace_back(f32[i].data(), DType::F32, n);
      } else if (a.kind == Kind::I32) {
        for (double x : a.v) i32[i].push_back(poison ? -7 : static_cast<int32_t>(x));
        t.emplace_back(i32[i].data(), DType::I32, n);
      } else {
        for (double x : a.v) u8[i].push_back(static_cast<uint8_t>(x));
        t.emplace_back(u8[i].data(), DType::U8, n);
      }
    }
  }
};

using OpFn = std::function<void(Backend&, const std::vector<Tensor>&)>;

// Runs `op` with the Act arguments BF16, then F32 on the same (widened) values; fills each
// output's `got` from the bf16 call and, when `emulated`, checks it is the fp32 call's output
// rounded once. (The log-prob kernels are not emulated: they read BF16 logits themselves, with
// their own SIMD path, so their results agree with the F32 path to fp32 rounding only.)
void run(const char* what, std::vector<Arg>& args, const OpFn& op, bool emulated = true) {
  auto be = sppo_test::cpu_backend();
  Call h(args, true), f(args, false);
  op(*be, h.t);
  op(*be, f.t);
  int bad = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    Arg& a = args[i];
    if (a.role == Role::In || a.empty) continue;
    a.got.clear();
    for (size_t j = 0; j < a.v.size(); ++j) {
      bool same;
      double g;
      if (a.kind == Kind::Act) {
        g = bf16_to_f32(h.b16[i][j]);
        same = h.b16[i][j] == f32_to_bf16(f.f32[i][j]);
      } else if (a.kind == Kind::F32) {
        g = h.f32[i][j];
        same = h.f32[i][j] == f.f32[i][j] || (std::isnan(h.f32[i][j]) && std::isnan(f.f32[i][j]));
      } else {
        g = h.i32[i][j];
        same = h.i32[i][j] == f.i32[i][j];
      }
      a.got.push_back(g);
      if (!emulated) continue;
      if (!same && ++bad <= 3)
        std::printf("  %s: argument %zu [%zu] = %.9g, not the fp32 call's result rounded once\n", what, i, j, g);
    }
  }
  if (bad) std::printf("  %s: %d values differ from the fp32 call's rounded results\n", what, bad);
  CHECK(bad == 0);
}

// |got - want| <= 2^-8 |want| + (1 + 2^-8) e32, e32 = k 2^-24 (|want| + rms(want) + terms[i])
// (bf16: the fp32 result's error, then half an ulp of rounding); NaN is a miss. `terms` (optional):
// each value's operand magnitudes where it is a difference that can cancel (rmsnorm's dx), whose
// fp32 error scales with them, not with the result.
void check_bf16(const std::string& what, const std::vector<double>& got, const std::vector<double>& want, double k,
                const std::vector<double>* terms = nullptr) {
  const double scale = sppo_test::rms(want), e = 0x1p-24 * k;
  int bad = 0;
  CHECK(got.size() == want.size());
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    const double w = want[i], t = terms ? (*terms)[i] : 0.0;
    const double tol = 0x1p-8 * std::fabs(w) + (1 + 0x1p-8) * e * (std::fabs(w) + scale + t);
    if (std::fabs(got[i] - w) <= tol) continue;
    if (++bad <= 3) std::printf("  %s[%zu] = %.9g, expected %.9g (tolerance %.3g)\n", what.c_str(), i, got[i], w, tol);
  }
  if (bad) std::printf("  %s: %d of %zu values off\n", what.c_str(), bad, got.size());
  CHECK(bad == 0);
}
// Within k fp32 ulps of (|want| + rms(want) + terms[i]); `terms` (optional) as in check_bf16.
void check_f32(const std::string& what, const std::vector<double>& got, const std::vector<double>& want, double k,
               const std::vector<double>* terms = nullptr) {
  const double scale = sppo_test::rms(want), e = 0x1p-24 * k;
  int bad = 0;
  CHECK(got.size() == want.size() && (!terms || terms->size() == want.size()));
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    const double t = terms && i < terms->size() ? (*terms)[i] : 0.0;
    if (std::fabs(got[i] - want[i]) <= e * (std::fabs(want[i]) + scale + t)) continue;
    if (++bad <= 3) std::printf("  %s[%zu] = %.10g, expected %.10g\n", what.c_str(), i, got[i], want[i]);
  }
  if (bad > 3) std::printf("  %s: %d of %zu values off\n", what.c_str(), bad, got.size());
  CHECK(bad == 0);
}

std::vector<double> random_ids(Rng& rng, int64_t n, int64_t lo, int64_t hi) {
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<double>(rng.integer(lo, hi));
  return v;
}
// n distinct values of [0, m) (n <= m).
std::vector<double> distinct(Rng& rng, int64_t n, int64_t m) {
  std::vector<double> all(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) all[static_cast<size_t>(i)] = static_cast<double>(i);
  for (int64_t i = 0; i < n; ++i) std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(rng.integer(i, m - 1))]);
  all.resize(static_cast<size_t>(n));
  return all;
}

double silu(double g) { return g / (1 + std::exp(-g)); }

}  // namespace

TEST(embedding_forward_and_backward) {
  Rng rng(1701);
  for (int round = 0; round < 4; ++round) {
    const int64_t V = rng.integer(2, 40), H = rng.integer(1, 70), n = rng.integer(1, 30);
    std::vector<double> ids = random_ids(rng, n, -1, V - 1);  // -1: padding rows
    std::vector<Arg> a = {in(Kind::Act, rbf(rng, V * H)), in(Kind::I32, ids), out(Kind::Act, n * H)};
    run("embedding_forward", a, [&](Backend& b, const std::vector<Tensor>& t) {
      b.embedding_forward(t[0], V, H, t[1], n, t[2]);
    });
    std::vector<double> want(static_cast<size_t>(n * H), 0.0);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < H; ++j)
        if (ids[r] >= 0) want[r * H + j] = a[0].v[static_cast<size_t>(ids[r] * H + j)];
    check_bf16("embedding_forward out", a[2].got, want, 0);
    // Backward: BF16 dout added into the F32 gradient rows.
    std::vector<Arg> g = {in(Kind::Act, rbf(rng, n * H)), in(Kind::I32, ids), inout(Kind::F32, rf32(rng, V * H))};
    run("embedding_backward", g, [&](Backend& b, const std::vector<Tensor>& t) {
      b.embedding_backward(t[0], t[1], n, V, H, t[2]);
    });
    std::vector<double> dt = g[2].v;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < H; ++j)
        if (ids[r] >= 0) dt[ids[r] * H + j] += g[0].v[r * H + j];
    check_f32("embedding_backward dtable", g[2].got, dt, 2.0 * n + 2);
  }
}

TEST(matmul_every_form_into_bf16_and_f32_with_and_without_accumulation) {
  Rng rng(1702);
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (Kind ck : {Kind::Act, Kind::F32})
        for (bool acc : {false, true}) {
          const int64_t M = rng.integer(1, 40), N = rng.integer(1, 40), K = rng.integer(1, 300);
          std::vector<double> c0 = ck == Kind::Act ? rbf(rng, M * N) : rf32(rng, M * N);
          std::vector<Arg> a = {in(Kind::Act, rbf(rng, M * K)), in(Kind::Act, rbf(rng, K * N)),
                                acc ? inout(ck, c0) : out(ck, M * N)};
          run("matmul", a, [&](Backend& b, const std::vector<Tensor>& t) {
            b.matmul(t[0], t[1], t[2], M, N, K, ta, tb, acc);
          });
          std::vector<double> want(static_cast<size_t>(M * N));
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
              double s = acc ? c0[i * N + j] : 0.0;
              for (int64_t k = 0; k < K; ++k)
                s += a[0].v[ta ? k * M + i : i * K + k] * a[1].v[tb ? j * K + k : k * N + j];
              want[i * N + j] = s;
            }
          const std::string what = std::string("matmul C (") + (ta ? "A^T" : "A") + (tb ? " B^T" : " B") +
                                   (ck == Kind::Act ? ", BF16" : ", F32") + (acc ? ", accumulate)" : ")");
          if (ck == Kind::Act) check_bf16(what, a[2].got, want, 2.0 * K + 2);
          else check_f32(what, a[2].got, want, 2.0 * K + 2);
        }
}

TEST(rmsnorm_forward_and_backward_with_f32_statistics_and_weight_gradients) {
  Rng rng(1703);
  for (bool acc : {false, true}) {
    const int64_t n = rng.integer(1, 12), H = rng.integer(1, 90);
    const double eps = 1e-5;
    std::vector<Arg> f = {in(Kind::Act, rbf(rng, n * H)), in(Kind::Act, rbf(rng, H, 0.1, 1.0)), out(Kind::Act, n * H),
                          out(Kind::F32, n)};
    run("rmsnorm_forward", f, [&](Backend& b, const std::vector<Tensor>& t) {
      b.rmsnorm_forward(t[0], t[1], n, H, eps, t[2], t[3]);
    });
    std::vector<double> y(static_cast<size_t>(n * H)), rstd(static_cast<size_t>(n));
    const std::vector<double>&x = f[0].v, &w = f[1].v;
    for (int64_t r = 0; r < n; ++r) {
      double ss = 0;
      for (int64_t j = 0; j < H; ++j) ss += x[r * H + j] * x[r * H + j];
      rstd[r] = 1 / std::sqrt(ss / H + eps);
      for (int64_t j = 0; j < H; ++j) y[r * H + j] = x[r * H + j] * rstd[r] * w[j];
    }
    check_bf16("rmsnorm_forward y", f[2].got, y, 2.0 * H + 8);
    check_f32("rmsnorm_forward rstd", f[3].got, rstd, 2.0 * H + 8);
    // Backward from the forward's x, w and rstd (F32), into BF16 dx (added to when acc) and F32 dw.
    std::vector<double> rs32;
    for (double r : rstd) rs32.push_back(static_cast<float>(r));
    std::vector<double> dx0 = rbf(rng, n * H), dw0 = rf32(rng, H);
    std::vector<Arg> g = {in(Kind::Act, x),           in(Kind::Act, w),
                          in(Kind::F32, rs32),        in(Kind::Act, rbf(rng, n * H)),
                          acc ? inout(Kind::Act, dx0) : out(Kind::Act, n * H), inout(Kind::F32, dw0)};
    run("rmsnorm_backward", g, [&](Backend& b, const std::vector<Tensor>& t) {
      b.rmsnorm_backward(t[0], t[1], t[2], t[3], n, H, t[4], t[5], acc);
    });
    const std::vector<double>& dy = g[3].v;
    std::vector<double> dx(static_cast<size_t>(n * H)), dx_terms(dx.size()), dw = dw0;
    for (int64_t r = 0; r < n; ++r) {
      double gx = 0, gx_abs = 0;
      for (int64_t j = 0; j < H; ++j) {
        gx += dy[r * H + j] * w[j] * x[r * H + j];
        gx_abs += std::fabs(dy[r * H + j] * w[j] * x[r * H + j]);
      }
      const double rr = rs32[r];
      for (int64_t j = 0; j < H; ++j) {
        dx[r * H + j] = (acc ? dx0[r * H + j] : 0.0) + rr * dy[r * H + j] * w[j] - x[r * H + j] * rr * rr * rr / H * gx;
        // dx is a difference: its error follows the two terms (the dot product's by its |terms|).
        dx_terms[r * H + j] = std::fabs(rr * dy[r * H + j] * w[j]) + std::fabs(x[r * H + j] * rr * rr * rr / H) * gx_abs;
        dw[j] += dy[r * H + j] * x[r * H + j] * rr;
      }
    }
    check_bf16(acc ? "rmsnorm_backward dx (accumulate)" : "rmsnorm_backward dx", g[4].got, dx, 8.0 * H + 8, &dx_terms);
    check_f32("rmsnorm_backward dw", g[5].got, dw, 4.0 * n + 8);
  }
}

TEST(layernorm_and_bias_act_out_of_place_and_in_place) {
  Rng rng(1704);
  for (bool in_place : {false, true}) {
    const int64_t n = rng.integer(1, 10), H = rng.integer(1, 80);
    const double eps = 1e-7;
    std::vector<Arg> a = {in_place ? inout(Kind::Act, rbf(rng, n * H, 2.0, 0.5)) : in(Kind::Act, rbf(rng, n * H, 2.0, 0.5)),
                          in(Kind::Act, rbf(rng, H, 0.1, 1.0)), in(Kind::Act, rbf(rng, H, 0.1)),
                          out(Kind::Act, n * H)};
    a[3].empty = in_place;
    run("layernorm_forward", a, [&](Backend& b, const std::vector<Tensor>& t) {
      b.layernorm_forward(t[0], t[1], t[2], n, H, eps, in_place ? t[0] : t[3]);
    });
    std::vector<double> y(static_cast<size_t>(n * H));
    const std::vector<double>& x = a[0].v;
    for (int64_t r = 0; r < n; ++r) {
      double m = 0, var = 0;
      for (int64_t j = 0; j < H; ++j) m += x[r * H + j] / H;
      for (int64_t j = 0; j < H; ++j) var += (x[r * H + j] - m) * (x[r * H + j] - m) / H;
      for (int64_t j = 0; j < H; ++j) y[r * H + j] = (x[r * H + j] - m) / std::sqrt(var + eps) * a[1].v[j] + a[2].v[j];
    }
    check_bf16(in_place ? "layernorm_forward y = x" : "layernorm_forward y", in_place ? a[0].got : a[3].got, y, 4);
    for (Activation act : {Activation::Identity, Activation::Gelu, Activation::Tanh})
      for (bool bias : {false, true}) {
        std::vector<Arg> c = {in_place ? inout(Kind::Act, rbf(rng, n * H, 1.5)) : in(Kind::Act, rbf(rng, n * H, 1.5)),
                              in(Kind::Act, rbf(rng, H)), out(Kind::Act, n * H)};
        c[1].empty = !bias;
        c[2].empty = in_place;
        run("bias_act", c, [&](Backend& b, const std::vector<Tensor>& t) {
          b.bias_act(t[0], t[1], n, H, act, in_place ? t[0] : t[2]);
        });
        std::vector<double> want(static_cast<size_t>(n * H));
        for (int64_t r = 0; r < n; ++r)
          for (int64_t j = 0; j < H; ++j) {
            const double v = c[0].v[r * H + j] + (bias ? c[1].v[j] : 0.0);
            want[r * H + j] = act == Activation::Identity ? v
                              : act == Activation::Gelu   ? 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)))
                                                          : std::tanh(v);
          }
        check_bf16(std::string("bias_act ") + activation_name(act) + (bias ? " with bias" : "") +
                       (in_place ? " in place" : ""),
                   in_place ? c[0].got : c[2].got, want, 16);
      }
  }
}

TEST(rope_tables_and_rope_applied_in_place_both_ways) {
  Rng rng(1705);
  const int64_t n = rng.integer(1, 20), heads = rng.integer(1, 4), half = rng.integer(1, 16), hd = 2 * half;
  std::vector<double> inv(static_cast<size_t>(half)), pos = random_ids(rng, n, 0, 5000);
  for (int64_t i = 0; i < half; ++i) inv[i] = static_cast<float>(std::pow(10000.0, -2.0 * i / hd));
  std::vector<Arg> a = {in(Kind::F32, inv), in(Kind::I32, pos), out(Kind::Act, n * half), out(Kind::Act, n * half)};
  run("rope_tables", a, [&](Backend& b, const std::vector<Tensor>& t) { b.rope_tables(t[0], half, t[1], n, t[2], t[3]); });
  std::vector<double> c(static_cast<size_t>(n * half)), s(c.size());
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(inv[i]) * static_cast<float>(pos[r]);  // the contract's fp32 angle
      c[r * half + i] = std::cos(static_cast<double>(angle));
      s[r * half + i] = std::sin(static_cast<double>(angle));
    }
  // |cos|, |sin| <= 1: the fp32 error is absolute, against the tables' rms.
  check_bf16("rope_tables cos", a[2].got, c, 4);
  check_bf16("rope_tables sin", a[3].got, s, 4);
  for (bool inverse : {false, true}) {
    std::vector<Arg> r = {inout(Kind::Act, rbf(rng, n * heads * hd)), in(Kind::Act, a[2].got), in(Kind::Act, a[3].got)};
    run("rope_apply", r, [&](Backend& b, const std::vector<Tensor>& t) {
      b.rope_apply(t[0], n, heads, hd, t[1], t[2], inverse);
    });
    std::vector<double> want(r[0].v.size());
    for (int64_t row = 0; row < n; ++row)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < half; ++i) {
          const size_t at = static_cast<size_t>(row * heads * hd + h * hd + i);
          const double x1 = r[0].v[at], x2 = r[0].v[at + half], cc = r[1].v[row * half + i],
                       ss = (inverse ? -1 : 1) * r[2].v[row * half + i];
          want[at] = x1 * cc - x2 * ss;
          want[at + half] = x2 * cc + x1 * ss;
        }
    check_bf16(inverse ? "rope_apply inverse" : "rope_apply", r[0].got, want, 4);
  }
}

TEST(swiglu_forward_and_backward) {
  Rng rng(1706);
  const int64_t count = rng.integer(1, 3000);
  std::vector<Arg> f = {in(Kind::Act, rbf(rng, count, 2.0)), in(Kind::Act, rbf(rng, count)), out(Kind::Act, count)};
  run("swiglu_forward", f, [&](Backend& b, const std::vector<Tensor>& t) { b.swiglu_forward(t[0], t[1], count, t[2]); });
  std::vector<double> act(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) act[i] = silu(f[0].v[i]) * f[1].v[i];
  check_bf16("swiglu_forward act", f[2].got, act, 16);
  std::vector<Arg> g = {in(Kind::Act, f[0].v), in(Kind::Act, f[1].v), in(Kind::Act, rbf(rng, count)),
                        out(Kind::Act, count), out(Kind::Act, count)};
  run("swiglu_backward", g, [&](Backend& b, const std::vector<Tensor>& t) {
    b.swiglu_backward(t[0], t[1], t[2], count, t[3], t[4]);
  });
  std::vector<double> dg(static_cast<size_t>(count)), du(dg.size());
  for (int64_t i = 0; i < count; ++i) {
    const double x = g[0].v[i], s = 1 / (1 + std::exp(-x));
    du[i] = g[2].v[i] * silu(x);
    dg[i] = g[2].v[i] * g[1].v[i] * s * (1 + x * (1 - s));
  }
  check_bf16("swiglu_backward dgate", g[3].got, dg, 16);
  check_bf16("swiglu_backward dup", g[4].got, du, 16);
}

TEST(attention_forward_and_backward_with_f32_lse) {
  Rng rng(1707);
  for (int64_t nkv : {1, 2}) {
    const int64_t B = rng.integer(1, 3), T = rng.integer(1, 12), nh = 2 * nkv, hd = 2 * rng.integer(1, 8);
    const AttnShape s{B, T, nh, nkv, hd, 1.0 / std::sqrt(static_cast<double>(hd))};
    const int64_t N = B * T, qw = nh * hd, kw = nkv * hd;
    std::vector<uint8_t> mask(static_cast<size_t>(N), 1);
    for (int64_t b = 0; b < B; ++b)  // left padding of random length, never the whole row
      for (int64_t t = 0, pad = rng.integer(0, T - 1); t < pad; ++t) mask[b * T + t] = 0;
    std::vector<Arg> f = {in(Kind::Act, rbf(rng, N * qw)), in(Kind::Act, rbf(rng, N * kw)), in(Kind::Act, rbf(rng, N * kw)),
                          in(Kind::U8, d(mask)),           out(Kind::Act, N * qw),          out(Kind::F32, N * nh)};
    run("attention_forward", f, [&](Backend& b, const std::vector<Tensor>& t) {
      b.attention_forward(s, t[0], t[1], t[2], t[3], t[4], t[5]);
    });
    const sppo_test::AttnRef ref = sppo_test::attention_reference(s, f[0].v, f[1].v, f[2].v, mask);
    check_bf16("attention_forward out", f[4].got, ref.out, 64.0 * (T + hd));
    check_f32("attention_forward lse", f[5].got, ref.lse, 64.0 * (T + hd));
    // Backward from the forward's bf16 out and F32 lse.
    std::vector<Arg> g = {in(Kind::Act, f[0].v), in(Kind::Act, f[1].v), in(Kind::Act, f[2].v), in(Kind::U8, d(mask)),
                          in(Kind::Act, f[4].got), in(Kind::F32, f[5].got), in(Kind::Act, rbf(rng, N * qw)),
                          out(Kind::Act, N * qw), out(Kind::Act, N * kw), out(Kind::Act, N * kw)};
    run("attention_backward", g, [&](Backend& b, const std::vector<Tensor>& t) {
      b.attention_backward(s, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9]);
    });
    // The reference from the exact softmax: dp_j = <dout, v_j>, ds_j = p_j (dp_j - <dout, out>)
    // with the kernel's bf16 out in <dout, out> (what it is given), dq = scale sum ds_j k_j, dk_j
    // += scale ds_j q, dv_j += p_j dout.
    const std::vector<double>&q = g[0].v, &k = g[1].v, &v = g[2].v, &o = g[4].v, &dout = g[6].v;
    std::vector<double> dq(static_cast<size_t>(N * qw), 0.0), dk(static_cast<size_t>(N * kw), 0.0), dv(dk.size(), 0.0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t row = b * T + t;
        if (!mask[row]) continue;
        for (int64_t h = 0; h < nh; ++h) {
          const int64_t kh = h / (nh / nkv);
          double delta = 0;
          for (int64_t i = 0; i < hd; ++i) delta += dout[row * qw + h * hd + i] * o[row * qw + h * hd + i];
          for (int64_t j = 0; j <= t; ++j) {
            const int64_t key = b * T + j;
            if (!mask[key]) continue;
            double sc = 0, dp = 0;
            for (int64_t i = 0; i < hd; ++i) {
              sc += q[row * qw + h * hd + i] * k[key * kw + kh * hd + i];
              dp += dout[row * qw + h * hd + i] * v[key * kw + kh * hd + i];
            }
            const double p = std::exp(sc * s.scale - ref.lse[row * nh + h]), ds = p * (dp - delta);
            for (int64_t i = 0; i < hd; ++i) {
              dq[row * qw + h * hd + i] += s.scale * ds * k[key * kw + kh * hd + i];
              dk[key * kw + kh * hd + i] += s.scale * ds * q[row * qw + h * hd + i];
              dv[key * kw + kh * hd + i] += p * dout[row * qw + h * hd + i];
            }
          }
        }
      }
    check_bf16("attention_backward dq", g[7].got, dq, 256.0 * (T + hd));
    check_bf16("attention_backward dk", g[8].got, dk, 256.0 * (T + hd));
    check_bf16("attention_backward dv", g[9].got, dv, 256.0 * (T + hd));
  }
}

TEST(disentangled_attention_with_both_relative_terms_and_without) {
  Rng rng(1708);
  for (int variant = 0; variant < 3; ++variant) {
    RelAttnShape s;
    s.S = rng.integer(1, 3);
    s.nh = rng.integer(1, 3);
    s.hd = rng.integer(1, 9);
    s.max_len = rng.integer(1, 8);
    s.P = rng.integer(1, 6);
    s.c2p = variant != 1;
    s.p2c = variant != 2;
    s.scale = 1 / std::sqrt(s.hd * (1.0 + s.c2p + s.p2c));
    std::vector<double> start = {0};
    for (int64_t i = 0; i < s.S; ++i) start.push_back(start.back() + static_cast<double>(rng.integer(1, s.max_len)));
    s.N = static_cast<int64_t>(start.back());
    const int64_t w = s.nh * s.hd;
    const std::vector<double> rel = random_ids(rng, 2 * s.max_len - 1, 0, s.P - 1);
    std::vector<Arg> a = {in(Kind::Act, rbf(rng, s.N * w)), in(Kind::Act, rbf(rng, s.N * w)), in(Kind::Act, rbf(rng, s.N * w)),
                          in(Kind::Act, rbf(rng, s.P * w)), in(Kind::Act, rbf(rng, s.P * w)), in(Kind::I32, rel),
                          in(Kind::I32, start),             out(Kind::Act, s.N * w)};
    run("disentangled_attention", a, [&](Backend& b, const std::vector<Tensor>& t) {
      b.disentangled_attention(s, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]);
    });
    const std::vector<double>&q = a[0].v, &k = a[1].v, &v = a[2].v, &pq = a[3].v, &pk = a[4].v;
    std::vector<double> want(static_cast<size_t>(s.N * w), 0.0);
    for (int64_t sq = 0; sq < s.S; ++sq) {
      const int64_t b0 = static_cast<int64_t>(start[sq]), len = static_cast<int64_t>(start[sq + 1]) - b0;
      for (int64_t h = 0; h < s.nh; ++h)
        for (int64_t i = 0; i < len; ++i) {
          std::vector<double> sc(static_cast<size_t>(len));
          double m = -INFINITY;
          for (int64_t j = 0; j < len; ++j) {
            const int64_t dr = static_cast<int64_t>(rel[(i - j) + (s.max_len - 1)]);
            double x = 0;
            for (int64_t c = 0; c < s.hd; ++c) {
              const int64_t qi = (b0 + i) * w + h * s.hd + c, kj = (b0 + j) * w + h * s.hd + c, pr = dr * w + h * s.hd + c;
              x += q[qi] * k[kj] + (s.c2p ? q[qi] * pk[pr] : 0.0) + (s.p2c ? k[kj] * pq[pr] : 0.0);
            }
            sc[j] = x * s.scale;
            m = std::max(m, sc[j]);
          }
          double z = 0;
          for (double x : sc) z += std::exp(x - m);
          for (int64_t j = 0; j < len; ++j)
            for (int64_t c = 0; c < s.hd; ++c)
              want[(b0 + i) * w + h * s.hd + c] += std::exp(sc[j] - m) / z * v[(b0 + j) * w + h * s.hd + c];
        }
    }
    check_bf16("disentangled_attention out", a[7].got, want, 64.0 * (s.max_len + s.hd));
  }
}

TEST(kv_write_and_paged_attention_decode) {
  Rng rng(1709);
  const int64_t nkv = rng.integer(1, 2), nh = 2 * nkv, hd = 2 * rng.integer(1, 6), kw = nkv * hd, qw = nh * hd;
  const int64_t bs = 8, num_blocks = 6, pool_rows = bs * num_blocks, R = 3, stride = 3;
  // kv_write: R rows into distinct slots of pools that hold older values elsewhere.
  const std::vector<double> slots = distinct(rng, R, pool_rows);
  std::vector<Arg> w = {in(Kind::Act, rbf(rng, R * kw)), in(Kind::Act, rbf(rng, R * kw)), in(Kind::I32, slots),
                        inout(Kind::Act, rbf(rng, pool_rows * kw)), inout(Kind::Act, rbf(rng, pool_rows * kw))};
  run("kv_write", w, [&](Backend& b, const std::vector<Tensor>& t) {
    b.kv_write(t[0], t[1], t[2], R, kw, pool_rows, t[3], t[4]);
  });
  std::vector<double> kp = w[3].v, vp = w[4].v;
  for (int64_t r = 0; r < R; ++r)
    for (int64_t j = 0; j < kw; ++j) {
      kp[static_cast<size_t>(slots[r]) * kw + j] = w[0].v[r * kw + j];
      vp[static_cast<size_t>(slots[r]) * kw + j] = w[1].v[r * kw + j];
    }
  check_bf16("kv_write k_pool", w[3].got, kp, 0);
  check_bf16("kv_write v_pool", w[4].got, vp, 0);
  // attention_decode: row r reads table row r (blocks in a shuffled order), lengths up to 3 blocks.
  const std::vector<double> blocks = distinct(rng, num_blocks, num_blocks);
  std::vector<double> tables(static_cast<size_t>(R * stride)), rows = {0, 1, 2}, lengths;
  for (int64_t i = 0; i < R * stride; ++i) tables[i] = blocks[i % num_blocks];
  for (int64_t r = 0; r < R; ++r) lengths.push_back(static_cast<double>(rng.integer(1, bs * stride)));
  const PagedShape ps{R, nh, nkv, hd, bs, num_blocks, stride, 1.0 / std::sqrt(static_cast<double>(hd))};
  std::vector<Arg> a = {in(Kind::Act, rbf(rng, R * qw)), in(Kind::Act, w[3].got), in(Kind::Act, w[4].got),
                        in(Kind::I32, tables),           in(Kind::I32, rows),     in(Kind::I32, lengths),
                        out(Kind::Act, R * qw)};
  run("attention_decode", a, [&](Backend& b, const std::vector<Tensor>& t) {
    b.attention_decode(ps, t[0], t[1], t[2], t[3], t[4], t[5], t[6]);
  });
  std::vector<double> want(static_cast<size_t>(R * qw), 0.0);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t h = 0; h < nh; ++h) {
      const int64_t g = h / (nh / nkv), len = static_cast<int64_t>(lengths[r]);
      std::vector<double> sc(static_cast<size_t>(len));
      std::vector<int64_t> slot(static_cast<size_t>(len));
      double m = -INFINITY;
      for (int64_t p = 0; p < len; ++p) {
        slot[p] = static_cast<int64_t>(tables[r * stride + p / bs]) * bs + p % bs;
        double x = 0;
        for (int64_t i = 0; i < hd; ++i) x += a[0].v[r * qw + h * hd + i] * a[1].v[slot[p] * kw + g * hd + i];
        sc[p] = x * ps.scale;
        m = std::max(m, sc[p]);
      }
      double z = 0;
      for (double x : sc) z += std::exp(x - m);
      for (int64_t p = 0; p < len; ++p)
        for (int64_t i = 0; i < hd; ++i) want[r * qw + h * hd + i] += std::exp(sc[p] - m) / z * a[2].v[slot[p] * kw + g * hd + i];
    }
  check_bf16("attention_decode out", a[6].got, want, 64.0 * (bs * stride + hd));
}

TEST(gather_and_scatter_add_rows) {
  Rng rng(1710);
  const int64_t rows = rng.integer(2, 30), H = rng.integer(1, 50), n = rng.integer(1, rows);
  const std::vector<double> idx = distinct(rng, n, rows);
  std::vector<Arg> g = {in(Kind::Act, rbf(rng, rows * H)), in(Kind::I32, idx), out(Kind::Act, n * H)};
  run("gather_rows", g, [&](Backend& b, const std::vector<Tensor>& t) { b.gather_rows(t[0], rows, t[1], n, H, t[2]); });
  std::vector<double> want(static_cast<size_t>(n * H));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < H; ++j) want[i * H + j] = g[0].v[static_cast<size_t>(idx[i]) * H + j];
  check_bf16("gather_rows dst", g[2].got, want, 0);
  std::vector<Arg> s = {in(Kind::Act, rbf(rng, n * H)), in(Kind::I32, idx), inout(Kind::Act, rbf(rng, rows * H))};
  run("scatter_add_rows", s, [&](Backend& b, const std::vector<Tensor>& t) {
    b.scatter_add_rows(t[0], t[1], n, H, rows, t[2]);
  });
  std::vector<double> dst = s[2].v;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < H; ++j) dst[static_cast<size_t>(idx[i]) * H + j] += s[0].v[i * H + j];
  check_bf16("scatter_add_rows dst", s[2].got, dst, 2);
}

TEST(sampling_weights_and_argmax_read_bf16_logits) {
  Rng rng(1711);
  const int64_t n = rng.integer(1, 8), V = rng.integer(2, 300);
  const double temperature = rng.uniform(0.5, 1.5);
  std::vector<Arg> a = {in(Kind::Act, rbf(rng, n * V, 3.0)), out(Kind::F32, n * V)};
  run("sample_weights", a, [&](Backend& b, const std::vector<Tensor>& t) { b.sample_weights(t[0], n, V, temperature, t[1]); });
  std::vector<double> w(static_cast<size_t>(n * V));
  std::vector<double> best;
  for (int64_t r = 0; r < n; ++r) {
    const auto row = a[0].v.begin() + r * V;
    const double m = *std::max_element(row, row + V);
    best.push_back(static_cast<double>(std::max_element(row, row + V) - row));
    for (int64_t j = 0; j < V; ++j) w[r * V + j] = std::exp((row[j] - m) / temperature);
  }
  check_f32("sample_weights w", a[1].got, w, 16);
  std::vector<Arg> g = {in(Kind::Act, a[0].v), out(Kind::I32, n)};
  run("argmax_rows", g, [&](Backend& b, const std::vector<Tensor>& t) { b.argmax_rows(t[0], n, V, t[1]); });
  CHECK(g[1].got == best);  // the first maximum of each row
}

TEST(log_probs_of_bf16_logits_with_bf16_and_f32_gradients) {
  Rng rng(1712);
  const int64_t N = rng.integer(1, 10), V = rng.integer(2, 500);
  std::vector<double> labels = random_ids(rng, N, 0, V - 1);
  labels[0] = -100;  // ignored
  std::vector<Arg> f = {in(Kind::Act, rbf(rng, N * V, 2.0)), in(Kind::I32, labels), out(Kind::F32, N), out(Kind::F32, N)};
  run("logprob_forward", f, [&](Backend& b, const std::vector<Tensor>& t) { b.logprob_forward(t[0], N, V, t[1], t[2], t[3]); },
      false);
  std::vector<double> lse(static_cast<size_t>(N)), lp(lse.size());
  for (int64_t r = 0; r < N; ++r) {
    double m = -INFINITY, z = 0;
    for (int64_t j = 0; j < V; ++j) m = std::max(m, f[0].v[r * V + j]);
    for (int64_t j = 0; j < V; ++j) z += std::exp(f[0].v[r * V + j] - m);
    lse[r] = m + std::log(z);
    lp[r] = labels[r] < 0 ? 0.0 : f[0].v[r * V + static_cast<int64_t>(labels[r])] - lse[r];
  }
  // token_logp = x[label] - lse cancels: it carries lse's absolute error, k ulps of |lse|.
  std::vector<double> lse_terms;
  for (double l : lse) lse_terms.push_back(std::fabs(l));
  check_f32("logprob_forward token_logp", f[2].got, lp, 4.0 * V, &lse_terms);
  check_f32("logprob_forward lse", f[3].got, lse, 4.0 * V);
  for (Kind gk : {Kind::Act, Kind::F32}) {
    std::vector<Arg> g = {in(Kind::Act, f[0].v), in(Kind::I32, labels), in(Kind::F32, rf32(rng, N)), in(Kind::F32, f[3].got),
                          out(gk, N * V)};
    run("logprob_backward", g, [&](Backend& b, const std::vector<Tensor>& t) {
      b.logprob_backward(t[0], N, V, t[1], t[2], t[3], t[4]);
    }, false);
    std::vector<double> want(static_cast<size_t>(N * V));
    for (int64_t r = 0; r < N; ++r)
      for (int64_t j = 0; j < V; ++j)
        want[r * V + j] = labels[r] < 0 ? 0.0
                                        : g[2].v[r] * ((j == labels[r] ? 1.0 : 0.0) - std::exp(f[0].v[r * V + j] - g[3].v[r]));
    // From the lse the op was given (the forward's F32 one), as the op computes: an error in lse
    // would become every softmax value's relative error, large where |lse| is. At the label the
    // value is g - g p, which cancels where p is near 1: its error is ulps of |g|, not of the result.
    const double k = 8.0 * V;
    std::vector<double> label_terms(want.size(), 0.0);
    for (int64_t r = 0; r < N; ++r)
      if (labels[r] >= 0) label_terms[r * V + static_cast<int64_t>(labels[r])] = std::fabs(g[2].v[r]);
    if (gk == Kind::Act) check_bf16("logprob_backward grad_logits (BF16)", g[4].got, want, k, &label_terms);
    else check_f32("logprob_backward grad_logits (F32)", g[4].got, want, k, &label_terms);
  }
}

TEST(an_op_that_throws_leaves_its_bf16_outputs_as_they_were) {
  auto be = sppo_test::cpu_backend();
  Rng rng(1713);
  const int64_t H = 5, rows = 4;
  std::vector<uint16_t> src(2 * H), dst(rows * H);
  for (auto& x : src) x = f32_to_bf16(static_cast<float>(rng.normal()));
  for (auto& x : dst) x = f32_to_bf16(static_cast<float>(rng.normal()));
  const std::vector<uint16_t> before = dst;
  std::vector<int32_t> idx = {1, 9};  // 9 is outside the destination's rows: the kernel throws
  CHECK_THROWS_WITH(be->scatter_add_rows(Tensor(src.data(), DType::BF16, 2 * H), Tensor(idx.data(), DType::I32, 2), 2, H,
                                         rows, Tensor(dst.data(), DType::BF16, rows * H)),
                    "scatter_add_rows");
  CHECK(dst == before);
  std::vector<uint16_t> table(3 * H), out(2 * H, 0x7fc0);
  std::vector<int32_t> ids = {0, 3};  // 3 >= V
  CHECK_THROWS_WITH(be->embedding_forward(Tensor(table.data(), DType::BF16, 3 * H), 3, H, Tensor(ids.data(), DType::I32, 2),
                                          2, Tensor(out.data(), DType::BF16, 2 * H)),
                    "embedding_forward");
  CHECK(std::all_of(out.begin(), out.end(), [](uint16_t x) { return x == 0x7fc0; }));
}

TEST(the_ops_that_compute_in_f32_or_f64_only_refuse_bf16_by_name) {
  auto be = sppo_test::cpu_backend();
  std::vector<uint16_t> h(16);
  std::vector<int32_t> seg(4, 0);
  std::vector<uint8_t> mask(4, 1);
  std::vector<double> ss(1, 0.0);
  const Tensor x(h.data(), DType::BF16, 4), sg(seg.data(), DType::I32, 4), acc(ss.data(), DType::F64, 1);
  const char* want = "the CPU backend computes in F32 or F64 (got BF16)";
  CHECK_THROWS_WITH(be->segment_sum(x, sg, 4, 1, x), want);
  CHECK_THROWS_WITH(be->expand_segments(x, sg, 4, 1, 1.0, x), want);
  // (sum_squares reads BF16 gradients, the bf16 gradient arena: test_global_norm; the optimizer
  // steps read a BF16 g beside an F32 p, but their p and state stay F32 or F64.)
  CHECK_THROWS_WITH(be->rmsprop_step(x, x, x, 4, RmspropParams{}, acc, 0.0, Tensor()), std::string("rmsprop_step: ") + want);
  CHECK_THROWS_WITH(be->adamw_step(x, x, x, x, 4, AdamwParams{}, acc, 0.0, Tensor()), std::string("adamw_step: ") + want);
  LossTensors in{x, x, x, x, Tensor(), Tensor(), Tensor()};
  CHECK_THROWS_WITH(be->sppo_loss(LossType::SPPO, 0.1, 4, in, LossResultTensors{}), "sppo_loss: policy_chosen must be F32 (got BF16)");
  CHECK_THROWS_WITH(be->masked_sequence_sum(x, Tensor(mask.data(), DType::U8, 4), 2, 2, x),
                    "masked_sequence_sum: token_logp must be F32 (got BF16)");
}

TEST_MAIN()
