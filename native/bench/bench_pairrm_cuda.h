// bench_pairrm's CUDA side beside bench_model_cuda.h's timers and ceilings: a fast random PairRM
// (every parameter tiled from one device chunk of random values of the weight dtype, LayerNorm
// weights set to one; biases keep their small random values), since init_random draws PairRM's
// 0.43B values on one host thread.
#pragma once
#ifdef SPPO_WITH_CUDA
#include <string>
#include <vector>

#include "bench_model_cuda.h"
#include "model/pairrm_model.h"

namespace sppo_bench {

inline void fast_init(sppo::PairRmModel& m, const sppo::Buffer& chunk) {
  sppo::Backend& be = m.backend();
  const sppo::DType wt = m.dtypes().weight;
  for (std::size_t i = 0; i < m.layout().params().size(); ++i) {
    const sppo::Tensor p = m.param(static_cast<int>(i));
    tile_fill(be, chunk, p.data, p.bytes());
    if (m.layout()[static_cast<int>(i)].name.find("LayerNorm.weight") == std::string::npos) continue;
    if (wt == sppo::DType::BF16 || wt == sppo::DType::F16) {
      std::vector<uint16_t> ones(static_cast<size_t>(p.numel), sppo::f32_to_16bit(wt, 1.0f));
      be.upload(p.data, ones.data(), ones.size() * sizeof(uint16_t));
    } else {
      std::vector<float> ones(static_cast<size_t>(p.numel), 1.0f);
      be.upload(p.data, ones.data(), ones.size() * sizeof(float));
    }
  }
  be.synchronize();
}

}  // namespace sppo_bench
#endif
