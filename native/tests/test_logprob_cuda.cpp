// CUDA log-probability kernels against the CPU backend, both through the backend op table, on the
// same fresh random inputs: every dtype pair, in place and not, unaligned starts, vocabularies that
// are not multiples of 8 up to 128256, outputs poisoned with NaN; bad input is deferred to
// synchronize() and reported with the CPU backend's messages; and the production shape (8×1024
// tokens × 128256) checked on sampled rows. Skips (exit 77) with the reason where
// the build has no CUDA backend or no GPU is visible.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/buffer.h"
#include "core/parallel.h"
#include "backend_testing.h"
#include "kernels/logprob.h"
#include "testing.h"

using namespace sppo;
using sppo_test::Dev;
using sppo_test::Rng;

#ifdef SPPO_WITH_CUDA
namespace {

struct Data {
  int64_t N, V;
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  std::vector<int32_t> labels;
  std::vector<float> grad;
};

Data make(Rng& rng, int64_t N, int64_t V, double scale) {
  Data d{N, V, std::vector<float>(N * V), std::vector<uint16_t>(N * V), std::vector<int32_t>(N), std::vector<float>(N)};
  for (int64_t i = 0; i < N * V; ++i) {
    d.f32[i] = static_cast<float>(rng.normal(0, scale));
    d.bf16[i] = f32_to_bf16(d.f32[i]);
  }
  for (int64_t n = 0; n < N; ++n) {
    int64_t r = rng.integer(0, 5);
    d.labels[n] = r == 0 ? 0 : r == 1 ? int32_t(V - 1) : r == 2 ? kIgnoreIndex : int32_t(rng.integer(0, V - 1));
    d.grad[n] = static_cast<float>(rng.normal());
  }
  // The row maximum at the vector-load split edges: positions 0, 7, 8 and V - 1.
  for (int64_t n = 0; n < N; ++n) {
    const int64_t at = std::vector<int64_t>{0, 7, 8, V - 1}[static_cast<size_t>(n % 4)] % V;
    d.f32[n * V + at] = static_cast<float>(6 * scale);
    d.bf16[n * V + at] = f32_to_bf16(d.f32[n * V + at]);
  }
  return d;
}

float to_float(const std::vector<unsigned char>& b, DType t, int64_t i) {
  if (t == DType::F32) {
    float f;
    std::memcpy(&f, b.data() + i * 4, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, b.data() + i * 2, 2);
  return bf16_to_f32(h);
}

std::vector<unsigned char> bytes_of(const Data& d, DType t) {
  std::vector<unsigned char> out(static_cast<size_t>(d.N * d.V) * dtype_size(t));
  std::memcpy(out.data(), t == DType::F32 ? static_cast<const void*>(d.f32.data()) : d.bf16.data(), out.size());
  return out;
}

void compare(const Data& d, DType t, DType gt, bool in_place, int64_t offset) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const auto host = bytes_of(d, t);
  std::vector<unsigned char> xb = host;  // element-typed through the dtype of the Dev
  Dev cx(cpu, xb, DType::U8), gx(gpu, xb, DType::U8, offset * static_cast<int64_t>(dtype_size(t)));
  const Tensor cxt(cx.data(), t, d.N * d.V), gxt(gx.data(), t, d.N * d.V);
  Dev cy(cpu, d.labels, DType::I32), gy(gpu, d.labels, DType::I32), cg(cpu, d.grad, DType::F32), gg(gpu, d.grad, DType::F32);
  Dev ctl(cpu, d.N, DType::F32), clse(cpu, d.N, DType::F32), gtl(gpu, d.N, DType::F32), glse(gpu, d.N, DType::F32);
  cpu->logprob_forward(cxt, d.N, d.V, cy.t(), ctl.t(), clse.t());
  gpu->logprob_forward(gxt, d.N, d.V, gy.t(), gtl.t(), glse.t());
  gpu->synchronize();
  double scale = 0;
  for (int64_t i = 0; i < d.N * d.V; ++i) scale = std::fmax(scale, std::fabs(to_float(host, t, i)));
  const auto a = ctl.get<float>(), b = gtl.get<float>(), la = clse.get<float>(), lb = glse.get<float>();
  for (int64_t n = 0; n < d.N; ++n) {
    CHECK_CLOSE(b[n], a[n], 3e-5 + 4e-7 * scale, 2e-6);
    CHECK_CLOSE(lb[n], la[n], 3e-5 + 4e-7 * scale, 2e-6);
  }
  Dev cout(cpu, d.N * d.V * static_cast<int64_t>(dtype_size(gt)), DType::U8);
  Dev gout(gpu, (d.N * d.V + offset) * static_cast<int64_t>(dtype_size(gt)), DType::U8);
  const Tensor cdst(cout.data(), gt, d.N * d.V);
  const Tensor gdst = in_place ? gxt : Tensor(static_cast<char*>(gout.data()) + offset * dtype_size(gt), gt, d.N * d.V);
  cpu->logprob_backward(cxt, d.N, d.V, cy.t(), cg.t(), clse.t(), cdst);
  gpu->logprob_backward(gxt, d.N, d.V, gy.t(), gg.t(), in_place ? Tensor() : glse.t(), gdst);
  gpu->synchronize();
  std::vector<unsigned char> want(static_cast<size_t>(d.N * d.V) * dtype_size(gt)), got(want.size());
  cpu->download(want.data(), cdst.data, want.size());
  gpu->download(got.data(), gdst.data, got.size());
  const double rtol = gt == DType::F32 ? 1e-4 : 8e-3;
  for (int64_t i = 0; i < d.N * d.V; ++i) {
    const double w = to_float(want, gt, i), v = to_float(got, gt, i);
    // Each backend differentiates with its own lse, and the forward above lets the two differ (by
    // summation order over up to 128256 terms); that difference moves g * p by g * p * dlse, which
    // at a label whose p is near 1 is most of g * (p - 1): a seed found 1.3e-5 there.
    const int64_t row = i / d.V;
    const double p = std::exp(static_cast<double>(to_float(host, t, i)) - la[row]);
    const double dlse = std::fabs(static_cast<double>(lb[row]) - la[row]);
    const double atol = std::fabs(d.grad[row]) * (2e-6 + 4e-7 * scale + p * dlse);
    if (!(std::fabs(v - w) <= atol + rtol * std::fabs(w))) {
      CHECK_CLOSE(v, w, atol, rtol);
      break;  // one report per case is enough
    }
  }
}

}  // namespace

TEST(cuda_matches_cpu) {
  Rng rng(21);
  const int64_t shapes[][2] = {{1, 1}, {3, 1}, {5, 7}, {9, 1001}, {16, 32000}, {4, 128256}, {3, 20003}};
  for (auto& s : shapes) {
    Data d = make(rng, s[0], s[1], 4.0);
    for (int64_t off : {0, 1, 3}) {
      compare(d, DType::F32, DType::F32, false, off);
      compare(d, DType::BF16, DType::BF16, false, off);
      compare(d, DType::BF16, DType::F32, false, off);
      compare(d, DType::F32, DType::BF16, false, off);
      compare(d, DType::F32, DType::F32, true, off);
      compare(d, DType::BF16, DType::BF16, true, off);
    }
  }
  Data e = make(rng, 6, 4099, 1.0);
  for (int64_t i = 0; i < 6 * 4099; ++i) e.f32[i] = float(rng.uniform(-1e4, 1e4)), e.bf16[i] = f32_to_bf16(e.f32[i]);
  compare(e, DType::F32, DType::F32, false, 0);
  compare(e, DType::BF16, DType::BF16, true, 0);
}

// The production shape: 8×1024 tokens over Llama-3's vocabulary, 1.05e9 BF16 logits (2.1 GB), and
// an F32 gradient of 4.2 GB, past any 32-bit byte offset. Forward, backward to F32 out of place
// and to BF16 in place, each checked against the CPU twin on sampled rows (the first two, the last
// two and 60 drawn), every output poisoned first. Values are uniform in [-4, 4) from a counter
// hash (a normal draw per element would take minutes), with the row maximum at a vector-load edge.
TEST(cuda_production_shape_on_sampled_rows) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  std::printf("  skipped: 6.3 GB of device tensors under a sanitizer's shadow memory (the plain builds run it)\n");
  return;
#endif
  const int64_t N = 8 * 1024, V = 128256, NV = N * V;
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const std::size_t need = static_cast<std::size_t>(NV) * 6 + (std::size_t{64} << 20);
  if (gpu->available_memory() < need) {
    std::printf("  skipped: the device has %zu MiB free, the case needs %zu MiB\n", gpu->available_memory() >> 20,
                need >> 20);
    return;
  }
  Rng rng(23);
  const uint64_t seed = static_cast<uint64_t>(rng.integer(0, INT64_MAX));
  // Row n's logits, made again for each use: the host never holds all of them.
  auto make_row = [&](int64_t n, uint16_t* row) {
    for (int64_t v = 0; v < V; ++v) {
      uint64_t h = seed + static_cast<uint64_t>(n * V + v) * 0x9E3779B97F4A7C15ull;  // splitmix64
      h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
      h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
      h ^= h >> 31;
      row[v] = f32_to_bf16(static_cast<float>(static_cast<double>(h >> 11) * 0x1p-53 * 8.0 - 4.0));
    }
    const int64_t edge[4] = {0, 7, 8, V - 1};
    row[edge[n % 4]] = f32_to_bf16(24.f);
  };
  std::vector<int32_t> labels(static_cast<size_t>(N));
  std::vector<float> grad(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) {
    const int64_t r = rng.integer(0, 5);
    labels[n] = r == 0 ? 0 : r == 1 ? int32_t(V - 1) : r == 2 ? kIgnoreIndex : int32_t(rng.integer(0, V - 1));
    grad[n] = static_cast<float>(rng.normal());
  }
  std::vector<int64_t> rows = {0, 1, N - 2, N - 1};
  while (rows.size() < 64) rows.push_back(rng.integer(2, N - 3));

  Buffer gx(gpu, static_cast<std::size_t>(NV) * 2), gg32(gpu, static_cast<std::size_t>(NV) * 4);
  {
    const int64_t chunk = 256;  // rows per upload
    std::vector<uint16_t> part(static_cast<size_t>(chunk * V));
    for (int64_t n0 = 0; n0 < N; n0 += chunk) {
      parallel_for(chunk, [&](int64_t i) { make_row(n0 + i, part.data() + i * V); });
      gpu->upload(static_cast<uint16_t*>(gx.data()) + n0 * V, part.data(), part.size() * 2);
      gpu->synchronize();  // the emulator stages each pageable upload until the stream runs
    }
    std::vector<unsigned char> poison(std::size_t{64} << 20, 0xff);
    for (std::size_t at = 0; at < gg32.bytes(); at += poison.size()) {
      gpu->upload(static_cast<char*>(gg32.data()) + at, poison.data(), std::min(poison.size(), gg32.bytes() - at));
      gpu->synchronize();
    }
  }
  Dev gy(gpu, labels, DType::I32), gd(gpu, grad, DType::F32), gtl(gpu, N, DType::F32), glse(gpu, N, DType::F32);
  const Tensor logits(gx.data(), DType::BF16, NV);
  gpu->logprob_forward(logits, N, V, gy.t(), gtl.t(), glse.t());
  gpu->logprob_backward(logits, N, V, gy.t(), gd.t(), glse.t(), Tensor(gg32.data(), DType::F32, NV));
  gpu->synchronize();
  const auto tl = gtl.get<float>(), lse = glse.get<float>();
  std::vector<std::vector<float>> got32(rows.size(), std::vector<float>(static_cast<size_t>(V)));
  for (size_t i = 0; i < rows.size(); ++i)
    gpu->download(got32[i].data(), static_cast<const float*>(gg32.data()) + rows[i] * V, static_cast<std::size_t>(V) * 4);
  gpu->logprob_backward(logits, N, V, gy.t(), gd.t(), Tensor(), logits);  // in place, lse recomputed
  gpu->synchronize();

  int bad_rows = 0;
  std::vector<float> want32(static_cast<size_t>(V));
  std::vector<uint16_t> want16(static_cast<size_t>(V)), got16(static_cast<size_t>(V)), row(static_cast<size_t>(V));
  const double scale = 24;
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t n = rows[i];
    make_row(n, row.data());
    float wtl = 0, wlse = 0;
    cpu::logprob_forward(row.data(), DType::BF16, 1, V, &labels[n], &wtl, &wlse);
    cpu::logprob_backward(row.data(), DType::BF16, 1, V, &labels[n], &grad[n], &wlse, want32.data(), DType::F32);
    cpu::logprob_backward(row.data(), DType::BF16, 1, V, &labels[n], &grad[n], &wlse, want16.data(), DType::BF16);
    gpu->download(got16.data(), static_cast<const uint16_t*>(gx.data()) + n * V, static_cast<std::size_t>(V) * 2);
    const double atol = std::fabs(grad[n]) * (2e-6 + 4e-7 * scale);
    bool ok = std::fabs(tl[n] - wtl) <= 3e-5 + 4e-7 * scale + 2e-6 * std::fabs(wtl) &&
              std::fabs(lse[n] - wlse) <= 3e-5 + 4e-7 * scale + 2e-6 * std::fabs(wlse);
    for (int64_t v = 0; v < V && ok; ++v) {
      const double w = want32[v], g = got32[i][v], w16 = bf16_to_f32(want16[v]), g16 = bf16_to_f32(got16[v]);
      ok = std::fabs(g - w) <= atol + 1e-4 * std::fabs(w) && std::fabs(g16 - w16) <= atol + 8e-3 * std::fabs(w16);
      if (!ok) std::printf("  row %lld, column %lld: F32 %.8g want %.8g, BF16 %.6g want %.6g\n", static_cast<long long>(n),
                           static_cast<long long>(v), g, w, g16, w16);
    }
    if (!ok)
      std::printf("  row %lld: log-prob %.8g want %.8g, lse %.8g want %.8g\n", static_cast<long long>(n), tl[n], wtl, lse[n],
                  wlse);
    bad_rows += !ok;
  }
  std::printf("  %lld x %lld BF16 logits: %d of %zu sampled rows differ\n", static_cast<long long>(N),
              static_cast<long long>(V), bad_rows, rows.size());
  CHECK(bad_rows == 0);
}

TEST(cuda_masked_sum_and_deferred_errors) {
  Rng rng(22);
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const int64_t B = 7, T = 1000;
  std::vector<float> tl(B * T);
  std::vector<uint8_t> mask(B * T);
  for (int64_t i = 0; i < B * T; ++i) tl[i] = float(-rng.uniform(0, 10)), mask[i] = uint8_t(rng.integer(0, 1));
  Dev ct(cpu, tl, DType::F32), cm(cpu, mask, DType::U8), co(cpu, B, DType::F32);
  Dev gt(gpu, tl, DType::F32), gm(gpu, mask, DType::U8), go(gpu, B, DType::F32);
  cpu->masked_sequence_sum(ct.t(), cm.t(), B, T, co.t());
  gpu->masked_sequence_sum(gt.t(), gm.t(), B, T, go.t());
  gpu->synchronize();
  const auto want = co.get<float>(), got = go.get<float>();
  for (int64_t b = 0; b < B; ++b) CHECK_CLOSE(got[b], want[b], 1e-3, 1e-6);

  Data d = make(rng, 4, 300, 1.0);
  d.f32[2 * 300 + 17] = NAN;
  Dev x(gpu, d.f32, DType::F32), y(gpu, d.labels, DType::I32), t(gpu, 4, DType::F32), l(gpu, 4, DType::F32);
  gpu->logprob_forward(x.t(), 4, 300, y.t(), t.t(), l.t());  // queued: no error yet
  CHECK_THROWS_WITH(gpu->synchronize(), "logits[2, 17] is not finite");
  gpu->synchronize();  // the error was reported once; the word is clear again
  d.f32[2 * 300 + 17] = 0.f;
  d.labels[3] = 300;
  Dev x2(gpu, d.f32, DType::F32), y2(gpu, d.labels, DType::I32);
  gpu->logprob_forward(x2.t(), 4, 300, y2.t(), t.t(), Tensor());
  CHECK_THROWS_WITH(gpu->synchronize(), "labels[3] = 300");
}

#endif

TEST_MAIN_CUDA()
