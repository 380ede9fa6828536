// PairRmModel on CUDA in fp32 against the CPU engine, on the same weights (one host copy uploaded
// to both) and fresh random packed batches: the PairRM-shaped tiny config (both relative terms,
// log buckets, every relative row reached) and a variant (p2c off, unnormalized relative
// embeddings, three tasks). Hidden states within 1e-5 of their largest (fp32 both, sums in another
// order); comparison logits within 1e-5 of max(1, their largest) (differences of head outputs of
// order one). Host outputs are poisoned with NaN. fp64 is refused on CUDA by name. Skips (exit 77)
// without CUDA or a GPU. (The Llama engine: test_model_cuda.cpp.) bf16: CUDA bf16 against the
// CPU's emulated bf16 and its fp32 on the same weights, hidden states within 2e-2 relative norm
// and comparison logits within 2e-2 of max(1, their largest) of both (test_pairrm_model's bf16
// criteria); fp16 the same within 5e-3.
#include <cmath>
#include <string>
#include <vector>

#include "bf16_compare.h"
#include "engine_compare.h"
#include "model/pairrm_model.h"
#include "pairrm_reference.h"
#include "testing.h"

using namespace sppo;
using namespace engine_test;
using sppo_test::Rng;

TEST(pairrm_hidden_states_and_comparisons_match_the_cpu) {
  Rng rng(409);
  PairRmConfig variant = sppo_test::pairrm_tiny();
  variant.norm_rel_embeddings = false;
  variant.num_tasks = 3;
  variant.p2c = false;
  for (const PairRmConfig& c : {sppo_test::pairrm_tiny(), variant}) {
    PairRmModel mc(cpu_be(), c, Precision::FP32), mg(gpu_be(), c, Precision::FP32);
    // Weights of order one, as test_pairrm_model: embeddings N(0, 1), matrices N(0, 1/in), norm
    // weights 1 + N(0, 0.2^2), biases N(0, 0.2^2).
    for (size_t i = 0; i < mc.layout().params().size(); ++i) {
      const ParamSpec& p = mc.layout()[static_cast<int>(i)];
      std::vector<float> v(static_cast<size_t>(p.numel));
      const bool norm_w = p.name.find("LayerNorm.weight") != std::string::npos;
      for (auto& x : v)
        x = static_cast<float>(p.shape.size() == 2
                                   ? rng.normal(0, p.name.find("embeddings") != std::string::npos ? 1.0 : 1.0 / std::sqrt(double(p.shape[1])))
                                   : (norm_w ? 1 + 0.2 * rng.normal() : 0.2 * rng.normal()));
      put(mc.backend(), mc.param(static_cast<int>(i)), v);
      put(mg.backend(), mg.param(static_cast<int>(i)), v);
    }
    std::vector<int32_t> lengths = {3, 47, 1, 25}, tokens, slots;
    for (int32_t L : lengths) {
      for (int32_t j = 0; j < L; ++j) tokens.push_back(static_cast<int32_t>(rng.integer(0, c.vocab_size - 1)));
      for (int k = 0; k < 3; ++k) slots.push_back(static_cast<int32_t>(rng.integer(0, L - 1)));
    }
    const PairBatch b{static_cast<int64_t>(lengths.size()), lengths.data(), tokens.data(), slots.data()};
    std::vector<float> h[2], lg[2];
    for (int d = 0; d < 2; ++d) {
      PairRmModel& m = d == 0 ? mc : mg;
      h[d].assign(tokens.size() * static_cast<size_t>(c.hidden_size), kNaN);
      lg[d].assign(lengths.size(), kNaN);
      m.hidden_states(b, Tensor(h[d].data(), DType::F32, static_cast<int64_t>(h[d].size())));
      m.compare(b, Tensor(lg[d].data(), DType::F32, static_cast<int64_t>(lg[d].size())));
    }
    const std::string what = c.num_tasks == 1 ? "PairRM" : "PairRM (p2c off, unnormalized, 3 tasks)";
    expect_rel(what + " hidden states", h[1], h[0], 1e-5);
    float scale = 1;
    for (float x : lg[0]) scale = std::max(scale, std::fabs(x));
    expect_rel(what + " comparison logits", lg[1], lg[0], 0, 1e-5 * scale);
  }
}

// bf16 and fp16 (PairRM's 16-bit modes): CUDA against the CPU's emulation of the same mode and
// against fp32, within 2e-2 (bf16) and 5e-3 (fp16, three more mantissa bits) relative.
TEST(bf16_and_fp16_pairrm_match_the_cpus_same_mode_and_fp32) {
  Rng rng(416);
  PairRmConfig variant = sppo_test::pairrm_tiny();
  variant.norm_rel_embeddings = false;
  variant.num_tasks = 3;
  variant.p2c = false;
  for (const Precision prec : {Precision::BF16, Precision::FP16})
  for (const PairRmConfig& c : {sppo_test::pairrm_tiny(), variant}) {
    const double tol = prec == Precision::BF16 ? bf16_test::kLogitsRel : bf16_test::kLogitsRel / 4;
    PairRmModel f(cpu_be(), c, Precision::FP32), hc(cpu_be(), c, prec), hg(gpu_be(), c, prec);
    const auto w = bf16_test::pairrm_weights(f.layout(), rng);
    for (PairRmModel* m : {&f, &hc, &hg}) bf16_test::set_params(*m, w);
    std::vector<int32_t> lengths = {3, 47, 1, 25}, tokens, slots;
    for (int32_t L : lengths) {
      for (int32_t j = 0; j < L; ++j) tokens.push_back(static_cast<int32_t>(rng.integer(0, c.vocab_size - 1)));
      for (int k = 0; k < 3; ++k) slots.push_back(static_cast<int32_t>(rng.integer(0, L - 1)));
    }
    const PairBatch b{static_cast<int64_t>(lengths.size()), lengths.data(), tokens.data(), slots.data()};
    std::vector<float> h[3], lg[3];
    PairRmModel* ms[3] = {&f, &hc, &hg};
    for (int d = 0; d < 3; ++d) {
      h[d].assign(tokens.size() * static_cast<size_t>(c.hidden_size), kNaN);
      lg[d].assign(lengths.size(), kNaN);
      ms[d]->hidden_states(b, Tensor(h[d].data(), DType::F32, static_cast<int64_t>(h[d].size())));
      ms[d]->compare(b, Tensor(lg[d].data(), DType::F32, static_cast<int64_t>(lg[d].size())));
    }
    const std::string what = std::string("PairRM ") + precision_name(prec) +
                             (c.num_tasks == 1 ? "" : " (p2c off, unnormalized, 3 tasks)");
    for (int ref = 0; ref < 2; ++ref) {
      const std::string vs = ref ? std::string(" (cuda vs cpu ") + precision_name(prec) + ")" : " (cuda vs cpu fp32)";
      bf16_test::expect_rel_norm(what + " hidden states" + vs, h[2], h[ref], tol);
      float scale = 1;
      for (float x : lg[ref]) scale = std::max(scale, std::fabs(x));
      expect_rel(what + " comparison logits" + vs, lg[2], lg[ref], 0, tol * scale);
    }
  }
}

TEST(fp64_pairrm_is_refused_on_cuda_by_name) {
  CHECK_THROWS_WITH(PairRmModel(gpu_be(), sppo_test::pairrm_tiny(), Precision::FP64), "fp64 models need the CPU backend");
}

TEST_MAIN_CUDA()
