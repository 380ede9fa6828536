// CUDA SPPO loss family against the CPU backend, both through the backend op table, on the same
// fresh random inputs (outputs poisoned with NaN); bad input is deferred to synchronize() with the
// CPU's message. Skips (exit 77) with the reason where there is no CUDA backend or GPU.
#include <cstdio>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend_testing.h"
#include "kernels/sppo_loss.h"
#include "testing.h"

using namespace sppo;
using sppo_test::Dev;
using sppo_test::Rng;

#ifdef SPPO_WITH_CUDA
TEST(cuda_loss_matches_cpu) {
  Rng rng(31);
  auto cpu = backend_for(Device::CPU), gpu = backend_for(Device::CUDA);
  for (LossType type : kLossTypes)
    for (double eta : {1.0, 1000.0, 1e4})
      for (int64_t B : {1, 64, 1000}) {
        std::vector<std::vector<float>> col(7, std::vector<float>(B));
        for (int64_t i = 0; i < B; ++i) {
          for (int c = 0; c < 4; ++c) col[c][i] = float(-rng.uniform(5, 300));
          for (int c = 4; c < 7; ++c) col[c][i] = float(rng.uniform(0, 1));
        }
        const double scale = rng.uniform(0.1, 2.0);
        std::vector<double> summaries[2];
        std::vector<std::vector<float>> outs[2];
        int side = 0;
        for (auto& be : {cpu, gpu}) {
          std::vector<Dev> in, out;
          for (auto& c : col) in.emplace_back(be, c, DType::F32);
          for (int k = 0; k < 5; ++k) out.emplace_back(be, B, DType::F32);
          Dev sum(be, 5, DType::F64);
          LossTensors lt{in[0].t(), in[1].t(), in[2].t(), in[3].t(), in[4].t(), in[5].t(), in[6].t()};
          LossResultTensors lr;
          lr.losses = out[0].t();
          lr.grad_chosen = out[1].t();
          lr.grad_rejected = out[2].t();
          lr.rewards_chosen = out[3].t();
          lr.rewards_rejected = out[4].t();
          lr.summary = sum.t();
          lr.grad_scale = scale;
          be->sppo_loss(type, 1 / eta, B, lt, lr);
          be->synchronize();
          for (auto& o : out) outs[side].push_back(o.get<float>());
          summaries[side] = sum.get<double>();
          ++side;
        }
        for (int k = 0; k < 5; ++k)
          for (int64_t i = 0; i < B; ++i) CHECK_CLOSE(outs[1][k][i], outs[0][k][i], 1e-7, 1e-6);
        for (int k = 0; k < 5; ++k) CHECK_CLOSE(summaries[1][k], summaries[0][k], 1e-9, 1e-9);
      }
  // A bad probability: queued without an error, thrown by synchronize() with the CPU's words.
  std::vector<float> ok(4, -10.f), probs = {0.5f, 1.5f, 0.2f, 0.1f};
  Dev a(gpu, ok, DType::F32), p(gpu, probs, DType::F32), s(gpu, 5, DType::F64);
  LossTensors lt{a.t(), a.t(), a.t(), a.t(), Tensor(), p.t(), p.t()};
  LossResultTensors lr;
  lr.summary = s.t();
  gpu->sppo_loss(LossType::SPPO, 1e-3, 4, lt, lr);
  CHECK_THROWS_WITH(gpu->synchronize(), "chosen_probs_win[1] = 1.5");
}

#endif

TEST_MAIN_CUDA()
