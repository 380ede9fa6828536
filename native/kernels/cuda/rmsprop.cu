// CUDA RMSprop over a flat range (kernels/rmsprop.h): one element per thread in a grid-stride
// loop, the CPU's per-element math (optim_math.h) on the same fp32 scalars. The clip coefficient
// is computed on the device from the device scalar *sum_squares exactly as the CPU computes it
// (optim_math::clip_coef in double, then rounded to fp32), so the host never waits for the norm;
// a non-finite norm leaves p and v (and w16) unchanged. With w16 (bf16 training) each thread
// also writes bf16(p[i]) with the CPU's rounding (optim_math::bf16_bits): one pass, no second kernel.
// BF16 gradients (the trainer's bf16 gradient arena) are widened per element, as on the CPU.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/host_helpers.h"
#include "kernels/rmsprop.h"

namespace sppo {
namespace cuda {
namespace {

constexpr int kBlock = 256;

// G: float, or uint16_t (bf16 gradients, widened per element by optim_math::load_grad).
template <typename G>
__global__ void __launch_bounds__(kBlock)
    rmsprop_kernel(float* __restrict__ p, const G* __restrict__ g, float* __restrict__ v, int64_t n,
                   optim_math::RmspropScalars<float> s, const double* __restrict__ sum_squares, double max_norm,
                   uint16_t* __restrict__ w16) {
  bool skip = false;
  const float coef = static_cast<float>(optim_math::clip_coef(*sum_squares, max_norm, &skip));
  if (skip) return;
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < n; i += int64_t(gridDim.x) * kBlock) {
    float pi = p[i], vi = v[i];
    optim_math::rmsprop_element(pi, g[i], vi, coef, s);
    p[i] = pi;
    v[i] = vi;
    if (w16) w16[i] = optim_math::bf16_bits(pi);
  }
}

}  // namespace

void rmsprop_step(float* p, const void* g, DType gdtype, float* v, int64_t n, const RmspropParams& h,
                  const double* sum_squares, double max_norm, uint16_t* w16, const Launch& l) {
  SPPO_CHECK(n >= 0, "rmsprop_step: n must be >= 0 (got ", n, ")");
  SPPO_CHECK(gdtype == DType::F32 || gdtype == DType::BF16, "rmsprop_step: CUDA gradients must be F32 or BF16 (got ",
             dtype_name(gdtype), ")");
  if (n == 0) return;
  const auto s = optim_math::rmsprop_scalars<float>(h);
  if (gdtype == DType::F32)
    rmsprop_kernel<<<grid_for(n, kBlock), kBlock, 0, stream_of(l)>>>(p, static_cast<const float*>(g), v, n, s,
                                                                     sum_squares, max_norm, w16);
  else
    rmsprop_kernel<<<grid_for(n, kBlock), kBlock, 0, stream_of(l)>>>(p, static_cast<const uint16_t*>(g), v, n, s,
                                                                     sum_squares, max_norm, w16);
  check_cuda(cudaGetLastError(), "rmsprop_step launch");
}

}  // namespace cuda
}  // namespace sppo
