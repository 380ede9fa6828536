// CUDA next-token choice (kernels/cuda/sample.cu) against the CPU backend, through the backend op
// table, on fresh random inputs:
// Sized for gpu-check.sh, which also runs every suite under compute-sanitizer memcheck and
// racecheck: few calls, rows of several kinds batched into one call.
// - sample_pick on weights made on the host (the contract's device-independent stage): the same
//   tokens and the same logp bits as the CPU for the same weights and streams, over V = 1, 2, 7,
//   8, 9, 13, 1000, 1025, 4097 and 128256; weights of a softmax, with ties (few distinct values),
//   with zeros and weights below 2^-40, near-flat (most of V in one bit-length bucket, the radix
//   selection's deep case), all equal, and peaked; top-k off, 1, 2, 5, 50, V - 1, V, V + 3, with
//   top-p 1, 0.95, 0.9, 0.5, 1e-9, 0.999999; outputs poisoned with NaN, tensors at unaligned
//   offsets; the host streams may be overwritten as soon as the call returns;
// - sample_weights: F32 and BF16 logits; the CPU's bits where the CPU runs its AVX2 path (the
//   shared kernels/sample_math.h weights), else within exp's rounding; the largest weight is 1;
// - argmax_rows: integer logits with many ties (the first maximum), F32 and BF16;
// - logits -> weights -> pick on the GPU alone equals the CPU's end to end (AVX2 CPUs), a batch of
//   16 rows of 128256;
// - bad values deferred to synchronize() with the CPU's messages, the first bad row first; the
//   backend works afterwards; bad arguments refused as the CPU refuses them.
// Skips (exit 77) without a CUDA backend or device.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend_testing.h"
#include "core/simd.h"
#include "cuda_compare.h"
#include "kernels/sample.h"
#include "testing.h"

using namespace sppo;
using sppo_test::Dev;
using sppo_test::Rng;

#ifdef SPPO_WITH_CUDA
namespace {

// Weights of one row, of a kind (see the header); the largest is exactly 1 (a real row's is).
std::vector<float> make_row(Rng& rng, int64_t V, int kind) {
  std::vector<float> w(static_cast<size_t>(V));
  for (auto& x : w) {
    if (kind == 0) x = static_cast<float>(std::exp(-std::fabs(rng.normal(0, 3))));  // softmax-like
    else if (kind == 1) x = static_cast<float>(rng.integer(0, 4)) / 4.f;             // ties
    else if (kind == 2)                                                               // zeros, q = 0
      x = rng.uniform() < 0.3 ? static_cast<float>(std::ldexp(rng.uniform(), -41)) : static_cast<float>(rng.uniform());
    else if (kind == 3) x = static_cast<float>(std::exp(-std::fabs(rng.normal(0, 0.01))));  // near-flat
    else if (kind == 4) x = 1.f;                                                             // all equal
    else x = static_cast<float>(std::exp(-std::fabs(rng.normal(0, 30))));                    // peaked
  }
  w[static_cast<size_t>(rng.integer(0, V - 1))] = 1.f;
  return w;
}
constexpr int kKinds = 6;

// The racecheck build (ThreadSanitizer over the CUDA emulator, docs/cuda-emulator.md) pays about
// 10^6 clock operations per barrier of a 1024-thread block, and the pick kernel has many: there
// the long grids run one case in kRaceEvery (every vocabulary, dtype and path still runs) and the
// many-steps case draws 16 steps, not 256. Elsewhere every case runs.
#ifdef SPPO_EMU_RACECHECK
constexpr int kRaceEvery = 11;  // coprime with the 6 top_p values: each top_k meets several
#else
constexpr int kRaceEvery = 1;
#endif

struct Picked {
  std::vector<int32_t> tokens;
  std::vector<float> logp;
};

Picked pick_on(const std::shared_ptr<Backend>& be, const std::vector<float>& w, int64_t n, int64_t V, int64_t top_k,
               double top_p, std::vector<SampleStream> streams, int64_t off) {
  Dev dw(be, w, DType::F32, off), dt(be, n, DType::I32, off + 1), dl(be, n, DType::F32, off + 2);
  be->sample_pick(dw.t(), n, V, top_k, top_p, streams.data(), dt.t(), dl.t());
  // The streams are host memory the caller may reuse at once: scribble over them before the
  // stream has run (the GPU must have taken its copy).
  for (auto& s : streams) s = SampleStream{~s.seed, s.sequence + 1, s.step + 7};
  be->synchronize();
  return {dt.get<int32_t>(), dl.get<float>()};
}

// Tokens equal and logp the same bits; prints the first few differences.
bool same_picks(const char* what, const Picked& gpu, const Picked& cpu) {
  int bad = 0;
  for (size_t r = 0; r < cpu.tokens.size(); ++r) {
    if (gpu.tokens[r] == cpu.tokens[r] && std::memcmp(&gpu.logp[r], &cpu.logp[r], sizeof(float)) == 0) continue;
    if (++bad <= 3)
      std::printf("  %s row %zu: CUDA token %d logp %.9g, CPU token %d logp %.9g\n", what, r, gpu.tokens[r],
                  gpu.logp[r], cpu.tokens[r], cpu.logp[r]);
  }
  if (bad) ++sppo_test::failures();
  return bad == 0;
}

std::vector<SampleStream> make_streams(Rng& rng, int64_t n) {
  std::vector<SampleStream> st(static_cast<size_t>(n));
  for (auto& s : st) s = {rng.gen(), rng.gen() % 4096, rng.gen()};
  return st;
}

}  // namespace

TEST(pick_gives_the_cpus_tokens_and_logp_bits) {
  // One call per (V, top_k, top_p): two rows of every kind of weights.
  Rng rng(301);
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  int calls = 0, k = 0, combo = 0;
  for (int64_t V : {1, 2, 7, 8, 9, 13, 1000, 1025, 4097})
    for (int64_t top_k : {int64_t(0), int64_t(1), int64_t(2), int64_t(5), int64_t(50), V - 1, V, V + 3})
      for (double top_p : {1.0, 0.95, 0.9, 0.5, 1e-9, 0.999999}) {
        if (combo++ % kRaceEvery) continue;
        const int64_t n = 2 * kKinds;
        std::vector<float> w;
        for (int64_t r = 0; r < n; ++r) {
          const auto row = make_row(rng, V, static_cast<int>(r % kKinds));
          w.insert(w.end(), row.begin(), row.end());
        }
        const auto st = make_streams(rng, n);
        char what[96];
        std::snprintf(what, sizeof what, "V %lld top_k %lld top_p %g (row r: kind r %% %d)", (long long)V,
                      (long long)top_k, top_p, kKinds);
        same_picks(what, pick_on(gpu, w, n, V, top_k, top_p, st, k++ % 4), pick_on(cpu, w, n, V, top_k, top_p, st, 0));
        ++calls;
      }
  CHECK(calls > 0);
}

TEST(pick_over_a_llama3_vocabulary_gives_the_cpus_bits) {
  Rng rng(302);
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const int64_t V = 128256, n = kKinds;  // row r: weights of kind r
  int combo = 0;
  for (auto [top_k, top_p] : {std::pair<int64_t, double>{0, 0.9}, {50, 1.0}, {0, 1.0}, {40, 0.95}, {0, 0.999999},
                              {1, 1.0}, {0, 1e-9}, {V - 1, 0.5}}) {
    if (combo++ % (kRaceEvery > 1 ? 4 : 1)) continue;
    std::vector<float> w;
    for (int64_t r = 0; r < n; ++r) {
      auto row = make_row(rng, V, static_cast<int>(r));
      for (int i = 0; i < 64; ++i) row[rng.integer(0, V - 1)] = row[rng.integer(0, V - 1)];  // exact ties
      w.insert(w.end(), row.begin(), row.end());
    }
    const auto st = make_streams(rng, n);
    char what[96];
    std::snprintf(what, sizeof what, "V 128256 top_k %lld top_p %g (row r: kind r)", (long long)top_k, top_p);
    same_picks(what, pick_on(gpu, w, n, V, top_k, top_p, st, 1), pick_on(cpu, w, n, V, top_k, top_p, st, 0));
  }
}

TEST(one_row_many_steps_gives_the_cpus_draws) {
  // The same weights drawn at 256 consecutive steps: draws land all over the row.
  Rng rng(303);
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  for (int64_t V : {37, 5000}) {
    const auto row = make_row(rng, V, 0);
    const int64_t n = kRaceEvery > 1 ? 16 : 256;
    std::vector<float> w;
    std::vector<SampleStream> st(n);
    const uint64_t seed = rng.gen();
    for (int64_t i = 0; i < n; ++i) {
      w.insert(w.end(), row.begin(), row.end());
      st[i] = {seed, 3, static_cast<uint64_t>(i)};
    }
    for (auto [top_k, top_p] : {std::pair<int64_t, double>{0, 1.0}, {10, 1.0}, {0, 0.9}, {12, 0.8}})
      same_picks("many steps", pick_on(gpu, w, n, V, top_k, top_p, st, 0), pick_on(cpu, w, n, V, top_k, top_p, st, 0));
  }
}

TEST(weights_match_the_cpu) {
  Rng rng(304);
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const bool bitwise = simd::use_avx2();
  if (!bitwise) std::printf("  the CPU runs its portable exp here: weights compared within exp's rounding\n");
  int k = 0, combo = 0;
  for (int64_t V : {1, 7, 8, 9, 1001, 128256})
    for (DType dt : {DType::F32, DType::BF16})
      for (double temp : {0.05, 0.7, 1.0, 3.0}) {
        if (combo++ % (kRaceEvery > 1 ? 4 : 1)) continue;
        const int64_t n = V > 10000 ? 3 : 5;
        std::vector<float> x = sppo_test::randn_f32(rng, n * V, 5.0);
        x[0] = 200.f;  // row 0: one far ahead, the rest underflow at small temperatures
        if (dt == DType::BF16) x = sppo_test::round_bf16(x);
        Dev cx(cpu, x, DType::F32), cw(cpu, n * V, DType::F32);
        cpu->sample_weights(cx.t(), n, V, temp, cw.t());
        Dev gx = sppo_test::dev_as(gpu, x, dt, k % 3), gw(gpu, n * V, DType::F32, (k + 1) % 3);
        ++k;
        gpu->sample_weights(gx.t(), n, V, temp, gw.t());
        gpu->synchronize();
        const auto want = cw.get<float>(), got = gw.get<float>();
        char what[96];
        std::snprintf(what, sizeof what, "w (V %lld %s t %g)", (long long)V, dtype_name(dt), temp);
        if (bitwise) sppo_test::expect_same_bits(what, got, want);
        else sppo_test::expect_close(what, got, want, 1e-38, 8 * 1.2e-7 * (1 + 2 * 200 / temp));
        for (int64_t r = 0; r < n; ++r) CHECK(*std::max_element(&got[r * V], &got[r * V] + V) == 1.f);
      }
}

TEST(argmax_takes_the_first_maximum) {
  Rng rng(305);
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  int k = 0;
  for (int64_t V : {1, 2, 9, 1000, 1025, 128256})
    for (DType dt : {DType::F32, DType::BF16}) {
      const int64_t n = 7;
      std::vector<float> x(static_cast<size_t>(n * V));
      for (auto& v : x) v = static_cast<float>(rng.integer(-3, 3));  // many ties
      for (int64_t j = 0; j < V; ++j) x[6 * V + j] = j % 2 ? -0.f : 0.f;  // +0 and -0 tie
      Dev cx(cpu, x, DType::F32), ct(cpu, n, DType::I32);
      cpu->argmax_rows(cx.t(), n, V, ct.t());
      Dev gx = sppo_test::dev_as(gpu, x, dt, k % 3), gt(gpu, n, DType::I32, (k + 2) % 3);
      ++k;
      gpu->argmax_rows(gx.t(), n, V, gt.t());
      gpu->synchronize();
      const auto want = ct.get<int32_t>(), got = gt.get<int32_t>();
      for (int64_t r = 0; r < n; ++r) {
        if (got[r] != want[r]) std::printf("  V %lld %s row %lld: %d, CPU %d\n", (long long)V, dtype_name(dt),
                                           (long long)r, got[r], want[r]);
        CHECK(got[r] == want[r]);
      }
    }
}

TEST(logits_to_tokens_on_the_gpu_equal_the_cpus) {
  if (!simd::use_avx2()) {
    std::printf("  skipped: the CPU's portable exp is not the shared one (needs the AVX2 path)\n");
    return;
  }
  Rng rng(306);
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const int64_t V = 128256, n = 16;
  const std::vector<float> x = sppo_test::randn_f32(rng, n * V, 2.0);
  const auto st = make_streams(rng, n);
  Dev cx(cpu, x, DType::F32), cw(cpu, n * V, DType::F32), ct(cpu, n, DType::I32), cl(cpu, n, DType::F32);
  Dev gx(gpu, x, DType::F32), gw(gpu, n * V, DType::F32), gt(gpu, n, DType::I32), gl(gpu, n, DType::F32);
  cpu->sample_weights(cx.t(), n, V, 0.7, cw.t());
  cpu->sample_pick(cw.t(), n, V, 0, 0.9, st.data(), ct.t(), cl.t());
  gpu->sample_weights(gx.t(), n, V, 0.7, gw.t());
  gpu->sample_pick(gw.t(), n, V, 0, 0.9, st.data(), gt.t(), gl.t());
  gpu->synchronize();
  same_picks("end to end", {gt.get<int32_t>(), gl.get<float>()}, {ct.get<int32_t>(), cl.get<float>()});
}

TEST(bad_values_say_what_the_cpu_says) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const int64_t n = 3, V = 5;
  auto both = [&](const char* what, const std::vector<float>& x, int op) {
    auto call = [&](const std::shared_ptr<Backend>& be) {
      Dev dx(be, x, DType::F32), dw(be, n * V, DType::F32), dt(be, n, DType::I32), dl(be, n, DType::F32);
      const std::vector<SampleStream> st(n);
      if (op == 0) be->sample_pick(dx.t(), n, V, 0, 0.9, st.data(), dt.t(), dl.t());
      if (op == 1) be->sample_weights(dx.t(), n, V, 0.7, dw.t());
      if (op == 2) be->argmax_rows(dx.t(), n, V, dt.t());
      be->synchronize();
    };
    sppo_test::expect_same_error(what, sppo_test::message_of([&] { call(cpu); }),
                                 sppo_test::message_of([&] { call(gpu); }));
  };
  std::vector<float> w(n * V, 0.5f);
  auto set = [&](std::vector<float> v, int64_t i, float x) {
    v[static_cast<size_t>(i)] = x;
    return v;
  };
  both("weight above 1", set(w, 7, 1.5f), 0);
  both("negative weight", set(w, 14, -0.25f), 0);
  both("NaN weight", set(w, 3, NAN), 0);
  both("two bad rows: the first", set(set(w, 12, 2.f), 6, -1.f), 0);
  std::vector<float> tiny = w;
  for (int64_t j = 0; j < V; ++j) tiny[V + j] = 1e-13f;  // row 1: q = 0 everywhere
  both("no weight above 2^-40", tiny, 0);
  both("an empty row before a bad weight", set(tiny, 11, 7.f), 0);  // row 2's weights are checked after row 1
  both("a bad weight before an empty row", set(tiny, 2, 7.f), 0);
  std::vector<float> x(n * V, 0.25f);
  for (int op : {1, 2}) {
    both("NaN logit", set(x, 8, NAN), op);
    both("inf logit", set(set(x, 13, INFINITY), 9, -INFINITY), op);
  }
  // The backend goes on working after a reported error.
  Dev dx(gpu, w, DType::F32), dt(gpu, n, DType::I32), dl(gpu, n, DType::F32);
  const std::vector<SampleStream> st(n);
  gpu->sample_pick(dx.t(), n, V, 0, 1.0, st.data(), dt.t(), dl.t());
  gpu->synchronize();
  for (int32_t tok : dt.get<int32_t>()) CHECK(tok >= 0 && tok < V);
}

TEST(bad_arguments_are_refused_as_on_the_cpu) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const std::vector<SampleStream> st(2);
  auto both = [&](const char* what, const std::function<void(const std::shared_ptr<Backend>&)>& f) {
    sppo_test::expect_same_error(what, sppo_test::message_of([&] { f(cpu); }), sppo_test::message_of([&] {
                                   f(gpu);
                                   gpu->synchronize();
                                 }));
  };
  auto pick = [&](int64_t V, int64_t k, double p, bool null_streams, int64_t w_size) {
    return [=, &st](const std::shared_ptr<Backend>& be) {
      Dev w(be, std::vector<float>(static_cast<size_t>(w_size), 1.f), DType::F32), t(be, 2, DType::I32),
          l(be, 2, DType::F32);
      be->sample_pick(w.t(), 2, V, k, p, null_streams ? nullptr : st.data(), t.t(), l.t());
    };
  };
  both("top_k < 0", pick(3, -1, 1.0, false, 6));
  both("top_p 0", pick(3, 0, 0.0, false, 6));
  both("top_p 1.5", pick(3, 0, 1.5, false, 6));
  both("top_p NaN", pick(3, 0, NAN, false, 6));
  both("V 0", pick(0, 0, 1.0, false, 6));
  both("null streams", pick(3, 0, 1.0, true, 6));
  both("short w", pick(3, 0, 1.0, false, 5));
  auto weights = [](int64_t V, double temp, int64_t x_size) {
    return [=](const std::shared_ptr<Backend>& be) {
      Dev x(be, std::vector<float>(static_cast<size_t>(x_size), 1.f), DType::F32), w(be, 6, DType::F32);
      be->sample_weights(x.t(), 2, V, temp, w.t());
    };
  };
  both("temperature 0", weights(3, 0.0, 6));
  both("temperature -1", weights(3, -1.0, 6));
  both("V 0 weights", weights(0, 0.7, 6));
  both("short logits", weights(3, 0.7, 5));
  both("short tokens", [](const std::shared_ptr<Backend>& be) {
    Dev x(be, std::vector<float>(6, 1.f), DType::F32), t(be, 1, DType::I32);
    be->argmax_rows(x.t(), 2, 3, t.t());
  });
  Dev x(gpu, std::vector<double>(6, 1.0), DType::F64), w(gpu, 6, DType::F32);
  CHECK_THROWS_WITH(gpu->sample_weights(x.t(), 2, 3, 0.7, w.t()),
                    "sample_weights: the CUDA backend computes in F32, BF16 or F16 (got F64)");
}

#endif

TEST_MAIN_CUDA()
