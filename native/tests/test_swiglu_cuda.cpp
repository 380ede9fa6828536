// CUDA SwiGLU (kernels/cuda/swiglu.cu) against the CPU backend: forward (also in place over gate)
// and backward, F32 and BF16, counts that are not multiples of 8, gates from -90 to 90, tensors
// at unaligned offsets, outputs poisoned with NaN, one larger case. Skips (exit 77) without a
// CUDA backend or device.
//
// Tolerances: the same formulas (kernels/swiglu_math.h); the CPU's exp is its AVX2 polynomial or
// libm, CUDA's is expf (2 ulp), and nvcc fuses multiply-adds: 4e-6 relative plus 1e-30 (results
// below that for very negative gates). dgate, which crosses zero, is held to 4e-6 of the size of
// its terms instead. BF16 outputs add 2^-8 relative.
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

void run_case(Rng& rng, int64_t count, DType dt, int64_t off, bool in_place) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  std::vector<float> gate = sppo_test::randn_f32(rng, count, 3.0), up = sppo_test::randn_f32(rng, count),
                     dact = sppo_test::randn_f32(rng, count);
  const float edges[] = {-90.f, -20.f, 0.f, 20.f, 90.f};
  for (int64_t i = 0; i < count && i < 5; ++i) gate[i * 7 % count] = edges[i];
  if (dt == DType::BF16)
    for (auto* v : {&gate, &up, &dact}) *v = sppo_test::round_bf16(*v);
  const double rtol = (dt == DType::BF16 ? std::ldexp(1.0, -8) : 0.0) + 4e-6;
  char what[80];

  Dev cg(cpu, gate, DType::F32), cu(cpu, up, DType::F32), ca(cpu, count, DType::F32);
  cpu->swiglu_forward(cg.t(), cu.t(), count, ca.t());
  Dev gg = sppo_test::dev_as(gpu, gate, dt, off), gu = sppo_test::dev_as(gpu, up, dt, off + 1);
  Dev ga(gpu, count, dt, off + 2);
  const Tensor act = in_place ? gg.t() : ga.t();
  gpu->swiglu_forward(gg.t(), gu.t(), count, act);
  gpu->synchronize();
  std::snprintf(what, sizeof what, "act (count=%lld %s in_place=%d)", (long long)count, dtype_name(dt), in_place);
  sppo_test::expect_close(what, sppo_test::floats_of(in_place ? gg : ga, dt), ca.get<float>(), 1e-30, rtol);

  Dev cd(cpu, dact, DType::F32), cdg(cpu, count, DType::F32), cdu(cpu, count, DType::F32);
  cpu->swiglu_backward(cg.t(), cu.t(), cd.t(), count, cdg.t(), cdu.t());
  Dev gg2 = sppo_test::dev_as(gpu, gate, dt, off + 1), gd = sppo_test::dev_as(gpu, dact, dt, off);
  Dev gdg(gpu, count, dt, off + 3), gdu(gpu, count, dt, off + 2);
  gpu->swiglu_backward(gg2.t(), gu.t(), gd.t(), count, gdg.t(), gdu.t());
  gpu->synchronize();
  // dgate = dact up s (1 + g (1 - s)) crosses zero near g = -1.28: its tolerance is relative to the
  // size of the terms, |dact up| s (1 + |g| (1 - s)).
  std::vector<double> gtol(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const double g = gate[i], sig = 1 / (1 + std::exp(-g));
    gtol[i] = rtol * std::fabs(double(dact[i]) * up[i]) * sig * (1 + std::fabs(g) * (1 - sig)) + 1e-30;
  }
  std::snprintf(what, sizeof what, "dgate (count=%lld %s)", (long long)count, dtype_name(dt));
  sppo_test::expect_close(what, sppo_test::floats_of(gdg, dt), cdg.get<float>(), gtol, rtol);
  std::snprintf(what, sizeof what, "dup (count=%lld %s)", (long long)count, dtype_name(dt));
  sppo_test::expect_close(what, sppo_test::floats_of(gdu, dt), cdu.get<float>(), 1e-30, rtol);
}

}  // namespace

TEST(forward_and_backward_match_the_cpu) {
  Rng rng(111);
  int k = 0;
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t count : {1, 7, 1001, 100003}) {
      run_case(rng, count, dt, k % 4, false);
      run_case(rng, count, dt, (k + 1) % 4, true);
      ++k;
    }
}

TEST(a_larger_case) {
  Rng rng(112);
  run_case(rng, 8 * 1024 * 1375 + 3, DType::BF16, 1, false);  // a micro-batch of a 5632-wide MLP, roughly
}

TEST(sizes_are_checked_as_on_the_cpu) {
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  for (auto& be : {cpu, gpu}) {
    Dev g(be, 10, DType::F32), u(be, 9, DType::F32), a(be, 10, DType::F32);
    CHECK_THROWS_WITH(be->swiglu_forward(g.t(), u.t(), 10, a.t()), "swiglu_forward: up has 9 elements, needs 10");
  }
}

#endif

TEST_MAIN_CUDA()
