// CUDA log-probability kernels against the CPU backend on the same fresh random inputs. Passes
// with a visible "skipped" line where the build has no CUDA backend or no GPU is visible.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "kernels/logprob.h"
#include "testing.h"
#ifdef SPPO_WITH_CUDA
#include "kernels/cuda/device_buffer.h"
#endif

using namespace sppo;
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
  return d;
}

float to_float(const void* p, DType t, int64_t i) {
  return t == DType::F32 ? static_cast<const float*>(p)[i] : bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
}

void compare(Data& d, DType t, DType gt, bool in_place, int64_t offset_elems) {
  const void* host = t == DType::F32 ? static_cast<const void*>(d.f32.data()) : static_cast<const void*>(d.bf16.data());
  const size_t es = dtype_size(t), bytes = d.N * d.V * es;
  std::vector<float> tl(d.N), lse(d.N), gtl(d.N), glse(d.N);
  cpu::logprob_forward(host, t, d.N, d.V, d.labels.data(), tl.data(), lse.data());
  // Offset the device copy to exercise the unaligned head/tail paths.
  cuda::DeviceBuffer x(bytes + 64);
  char* xp = x.as<char>() + offset_elems * es;
  cuda::check_cuda(cudaMemcpy(xp, host, bytes, cudaMemcpyHostToDevice), "upload");
  cuda::DeviceBuffer y(d.labels.data(), d.N * 4), g(d.grad.data(), d.N * 4), tlb(d.N * 4), lseb(d.N * 4);
  cuda::logprob_forward(xp, t, d.N, d.V, y.as<int32_t>(), tlb.as<float>(), lseb.as<float>(), nullptr);
  tlb.download(gtl.data(), d.N * 4);
  lseb.download(glse.data(), d.N * 4);
  double scale = 0;
  for (int64_t i = 0; i < d.N * d.V; ++i) scale = std::fmax(scale, std::fabs(to_float(host, t, i)));
  for (int64_t n = 0; n < d.N; ++n) {
    CHECK_CLOSE(gtl[n], tl[n], 3e-5 + 4e-7 * scale, 2e-6);
    CHECK_CLOSE(glse[n], lse[n], 3e-5 + 4e-7 * scale, 2e-6);
  }
  const size_t gbytes = d.N * d.V * dtype_size(gt);
  std::vector<unsigned char> want(gbytes), got(gbytes);
  cpu::logprob_backward(host, t, d.N, d.V, d.labels.data(), d.grad.data(), lse.data(), want.data(), gt);
  cuda::DeviceBuffer out(gbytes + 64);
  void* dst = in_place ? static_cast<void*>(xp) : static_cast<void*>(out.as<char>() + offset_elems * dtype_size(gt));
  cuda::logprob_backward(xp, t, d.N, d.V, y.as<int32_t>(), g.as<float>(), in_place ? nullptr : lseb.as<float>(), dst,
                         gt, nullptr);
  cuda::check_cuda(cudaMemcpy(got.data(), dst, gbytes, cudaMemcpyDeviceToHost), "download");
  const double rtol = gt == DType::F32 ? 1e-4 : 8e-3;
  for (int64_t i = 0; i < d.N * d.V; ++i) {
    const double w = to_float(want.data(), gt, i), v = to_float(got.data(), gt, i);
    const double atol = std::fabs(d.grad[i / d.V]) * (2e-6 + 4e-7 * scale);
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

TEST(cuda_masked_sum_and_errors) {
  Rng rng(22);
  const int64_t B = 7, T = 1000;
  std::vector<float> tl(B * T), want(B), got(B);
  std::vector<uint8_t> mask(B * T);
  for (int64_t i = 0; i < B * T; ++i) tl[i] = float(-rng.uniform(0, 10)), mask[i] = uint8_t(rng.integer(0, 1));
  cpu::masked_sequence_sum(tl.data(), mask.data(), B, T, want.data());
  cuda::DeviceBuffer a(tl.data(), tl.size() * 4), m(mask.data(), mask.size()), o(B * 4);
  cuda::masked_sequence_sum(a.as<float>(), m.as<uint8_t>(), B, T, o.as<float>(), nullptr);
  o.download(got.data(), B * 4);
  for (int64_t b = 0; b < B; ++b) CHECK_CLOSE(got[b], want[b], 1e-3, 1e-6);

  Data d = make(rng, 4, 300, 1.0);
  d.f32[2 * 300 + 17] = NAN;
  cuda::DeviceBuffer x(d.f32.data(), d.f32.size() * 4), y(d.labels.data(), 16), t(16), l(16);
  CHECK_THROWS_WITH(cuda::logprob_forward(x.get(), DType::F32, 4, 300, y.as<int32_t>(), t.as<float>(), l.as<float>(), nullptr),
                    "logits[2, 17] is not finite");
  d.labels[3] = 300;
  cuda::DeviceBuffer y2(d.labels.data(), 16);
  d.f32[2 * 300 + 17] = 0.f;
  cuda::DeviceBuffer x2(d.f32.data(), d.f32.size() * 4);
  CHECK_THROWS_WITH(cuda::logprob_forward(x2.get(), DType::F32, 4, 300, y2.as<int32_t>(), t.as<float>(), nullptr, nullptr),
                    "labels[3] = 300");
}

#endif

TEST_MAIN_CUDA()
