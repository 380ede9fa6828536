// CUDA SPPO loss family against the CPU backend on the same fresh random inputs. Passes with a
// visible "skipped" line where the build has no CUDA backend or no GPU is visible.
#include <cstdio>
#include <string>
#include <vector>

#include "core/device.h"
#include "kernels/sppo_loss.h"
#include "testing.h"
#ifdef SPPO_WITH_CUDA
#include "kernels/cuda/device_buffer.h"
#endif

using namespace sppo;
using sppo_test::Rng;

#ifdef SPPO_WITH_CUDA
TEST(cuda_loss_matches_cpu) {
  Rng rng(31);
  for (int t = 0; t < 5; ++t)
    for (double eta : {1.0, 1000.0, 1e4})
      for (int64_t B : {1, 64, 1000}) {
        std::vector<std::vector<float>> col(7, std::vector<float>(B));
        for (int64_t i = 0; i < B; ++i) {
          for (int c = 0; c < 4; ++c) col[c][i] = float(-rng.uniform(5, 300));
          for (int c = 4; c < 7; ++c) col[c][i] = float(rng.uniform(0, 1));
        }
        LossInputs in;
        in.B = B;
        in.beta = 1 / eta;
        in.type = static_cast<LossType>(t);
        in.policy_chosen = col[0].data();
        in.policy_rejected = col[1].data();
        in.ref_chosen = col[2].data();
        in.ref_rejected = col[3].data();
        in.chosen_probs = col[4].data();
        in.chosen_probs_win = col[5].data();
        in.chosen_probs_lose = col[6].data();
        std::vector<std::vector<float>> want(5, std::vector<float>(B)), got(5, std::vector<float>(B));
        LossSummary a = cpu::sppo_loss(in, {want[0].data(), want[1].data(), want[2].data(), want[3].data(), want[4].data()});
        std::vector<cuda::DeviceBuffer> din, dout;
        for (auto& c : col) din.emplace_back(c.data(), B * 4);
        for (int k = 0; k < 5; ++k) dout.emplace_back(B * 4);
        LossInputs d = in;
        d.policy_chosen = din[0].as<float>();
        d.policy_rejected = din[1].as<float>();
        d.ref_chosen = din[2].as<float>();
        d.ref_rejected = din[3].as<float>();
        d.chosen_probs = din[4].as<float>();
        d.chosen_probs_win = din[5].as<float>();
        d.chosen_probs_lose = din[6].as<float>();
        LossSummary b = cuda::sppo_loss(
            d, {dout[0].as<float>(), dout[1].as<float>(), dout[2].as<float>(), dout[3].as<float>(), dout[4].as<float>()},
            nullptr);
        for (int k = 0; k < 5; ++k) {
          dout[k].download(got[k].data(), B * 4);
          for (int64_t i = 0; i < B; ++i) CHECK_CLOSE(got[k][i], want[k][i], 1e-7, 1e-6);
        }
        CHECK_CLOSE(b.loss, a.loss, 1e-9, 1e-9);
        CHECK_CLOSE(b.rewards_chosen, a.rewards_chosen, 1e-9, 1e-9);
        CHECK_CLOSE(b.rewards_rejected, a.rewards_rejected, 1e-9, 1e-9);
        CHECK_CLOSE(b.margins, a.margins, 1e-9, 1e-9);
        CHECK_CLOSE(b.accuracy, a.accuracy, 1e-12, 0);
        if (t == 0 && B > 1) {
          col[5][1] = 1.5f;
          cuda::check_cuda(cudaMemcpy(din[5].get(), col[5].data(), B * 4, cudaMemcpyHostToDevice), "upload");
          CHECK_THROWS_WITH(cuda::sppo_loss(d, {dout[0].as<float>(), nullptr, nullptr, nullptr, nullptr}, nullptr),
                            "chosen_probs_win[1] = 1.5");
        }
      }
}

#endif

TEST_MAIN_CUDA()
