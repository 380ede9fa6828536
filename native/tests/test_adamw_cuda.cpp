// CUDA AdamW (kernels/cuda/adamw.cu) against the CPU backend: steps 1 to 4 on the same state
// (bias corrections), with clipping active (the coefficient read from the device sum of squares),
// without clipping, with weight decay; a non-finite norm leaves weights and both moments
// untouched (and the bf16 weights); sizes that are not multiples of the block, tensors at unaligned
// offsets; the bf16 weights written from the master in the same kernel (weights16) are its rounding
// bit for bit and within one bf16 step of the CPU's. Skips (exit 77) without a CUDA backend or device.
//
// Tolerance: the same fp32 formula on the same fp32 scalars; nvcc fuses multiply-adds, so each
// step may differ by a few fp32 roundings: 1e-6 relative on p, m and v.
// BF16 gradients (the bf16 gradient arena) are compared the same way, on bf16 values both sides.
#include <cmath>
#include <cstdio>
#include <vector>

#include "backend/backend.h"
#include "backend_testing.h"
#include "cuda_compare.h"
#include "testing.h"

using namespace sppo;
using sppo_test::Dev;
using sppo_test::Rng;

#ifdef SPPO_WITH_CUDA
namespace {

// gdt: the gradients' type (BF16: the bf16 gradient arena, widened per element on both sides).
void steps_case(Rng& rng, int64_t n, double sumsq, double max_norm, double wd, int64_t off, DType gdt = DType::F32) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  const std::vector<float> p = sppo_test::randn_f32(rng, n), zero(static_cast<size_t>(n), 0.f);
  Dev cp(cpu, p, DType::F32), cm(cpu, zero, DType::F32), cv(cpu, zero, DType::F32);
  Dev gp(gpu, p, DType::F32, off), gm(gpu, zero, DType::F32, off + 1), gv(gpu, zero, DType::F32, off + 2);
  Dev cs(cpu, std::vector<double>{sumsq}, DType::F64), gs(gpu, std::vector<double>{sumsq}, DType::F64);
  Dev cw(cpu, n, DType::BF16), gw(gpu, n, DType::BF16, off + 5);  // poisoned; odd offsets: 2-byte aligned only
  AdamwParams h;
  h.lr = 1e-3;
  h.weight_decay = wd;
  for (int64_t step = 1; step <= 4; ++step) {
    h.step = step;
    std::vector<float> g = sppo_test::randn_f32(rng, n, 0.1);
    if (gdt == DType::BF16) g = sppo_test::round_bf16(g);
    Dev cg = sppo_test::dev_as(cpu, g, gdt), gg = sppo_test::dev_as(gpu, g, gdt, off + 3);
    // Odd steps write the bf16 weights too, even ones only the master (the kernel's other branch).
    const bool w16 = step % 2 == 1;
    cpu->adamw_step(cp.t(), cg.t(), cm.t(), cv.t(), n, h, cs.t(), max_norm, w16 ? cw.t() : Tensor());
    gpu->adamw_step(gp.t(), gg.t(), gm.t(), gv.t(), n, h, gs.t(), max_norm, w16 ? gw.t() : Tensor());
    gpu->synchronize();
    char what[80];
    std::snprintf(what, sizeof what, "p (n=%lld step %lld max_norm %g wd %g)", (long long)n, (long long)step,
                  max_norm, wd);
    sppo_test::expect_close(what, gp.get<float>(), cp.get<float>(), 1e-30, 1e-6);
    sppo_test::expect_close("m", gm.get<float>(), cm.get<float>(), 1e-30, 1e-6);
    sppo_test::expect_close("v", gv.get<float>(), cv.get<float>(), 1e-30, 1e-6);
    if (w16) {
      std::snprintf(what, sizeof what, "weights16 (n=%lld step %lld)", (long long)n, (long long)step);
      sppo_test::expect_rounded_master(what, gw.get<uint16_t>(), gp.get<float>(), cw.get<uint16_t>(), cp.get<float>());
    }
  }
}

}  // namespace

TEST(steps_match_the_cpu) {
  Rng rng(151);
  steps_case(rng, 1, 0.25, 1.0, 0.0, 0);
  steps_case(rng, 1001, 400.0, 1.0, 0.0, 1);       // norm 20: clipped to 1/20
  steps_case(rng, 100003, 400.0, 0.0, 0.0, 2);     // no clipping
  steps_case(rng, 100003, 0.04, 1.0, 0.01, 3);     // norm below max_norm, weight decay
  steps_case(rng, 20'000'003, 9.0, 1.0, 0.1, 1);   // the larger case
}

TEST(bf16_gradient_steps_match_the_cpu) {
  Rng rng(153);
  steps_case(rng, 1, 0.25, 1.0, 0.0, 0, DType::BF16);
  steps_case(rng, 1001, 400.0, 1.0, 0.0, 1, DType::BF16);
  steps_case(rng, 100003, 0.04, 1.0, 0.01, 3, DType::BF16);
}

TEST(a_non_finite_norm_skips_the_step) {
  Rng rng(152);
  auto gpu = backend_for(Device::CUDA);
  const int64_t n = 4099;
  const std::vector<float> p = sppo_test::randn_f32(rng, n), m = sppo_test::randn_f32(rng, n, 1e-3),
                           v(n, 1e-5f), g = sppo_test::randn_f32(rng, n);
  for (double bad : {double(INFINITY), double(NAN)}) {
    Dev gp(gpu, p, DType::F32), gm(gpu, m, DType::F32), gv(gpu, v, DType::F32), gg(gpu, g, DType::F32);
    Dev gs(gpu, std::vector<double>{bad}, DType::F64);
    const std::vector<uint16_t> w = sppo_test::to_bf16(sppo_test::randn_f32(rng, n));
    Dev gw(gpu, w, DType::BF16, 1);
    AdamwParams h;
    h.lr = 1e-2;
    gpu->adamw_step(gp.t(), gg.t(), gm.t(), gv.t(), n, h, gs.t(), 1.0, gw.t());
    gpu->synchronize();
    CHECK(gw.get<uint16_t>() == w);  // the bf16 weights are left as they were too
    sppo_test::expect_same_bits("p after a skipped step", gp.get<float>(), p);
    sppo_test::expect_same_bits("m after a skipped step", gm.get<float>(), m);
    sppo_test::expect_same_bits("v after a skipped step", gv.get<float>(), v);
  }
}

TEST(sizes_are_checked_as_on_the_cpu) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  for (auto& be : {cpu, gpu}) {
    Dev p(be, 4, DType::F32), g(be, 4, DType::F32), m(be, 3, DType::F32), v(be, 4, DType::F32), s(be, 1, DType::F64);
    CHECK_THROWS_WITH(be->adamw_step(p.t(), g.t(), m.t(), v.t(), 4, AdamwParams{}, s.t(), 1.0, Tensor()),
                      "adamw_step: m has 3 elements, needs 4");
    Dev m4(be, 4, DType::F32), w3(be, 3, DType::BF16);
    CHECK_THROWS_WITH(be->adamw_step(p.t(), g.t(), m4.t(), v.t(), 4, AdamwParams{}, s.t(), 1.0, w3.t()),
                      "adamw_step: weights16 has 3 elements, needs 4");
  }
}

#endif

TEST_MAIN_CUDA()
