// CUDA SwiGLU forward and backward (kernels/swiglu.h) with the CPU's per-element formulas
// (kernels/swiglu_math.h) in fp32, one element per thread in grid-stride loops. act may alias gate
// (and dgate/dup their inputs): each element is read, then written, by the same thread, so no
// pointer here is __restrict__.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/host_helpers.h"
#include "kernels/swiglu.h"
#include "kernels/swiglu_math.h"

namespace sppo {
namespace cuda {
namespace {

constexpr int kBlock = 256;

template <typename E>
__global__ void __launch_bounds__(kBlock)
    forward_kernel(const typename E::raw* gate, const typename E::raw* up, int64_t count, typename E::raw* act) {
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < count; i += int64_t(gridDim.x) * kBlock)
    act[i] = E::store(swiglu_math::forward(E::load(gate[i]), E::load(up[i])));
}

template <typename E>
__global__ void __launch_bounds__(kBlock)
    backward_kernel(const typename E::raw* gate, const typename E::raw* up, const typename E::raw* dact, int64_t count,
                    typename E::raw* dgate, typename E::raw* dup) {
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < count; i += int64_t(gridDim.x) * kBlock) {
    float dg, du;
    swiglu_math::backward(E::load(gate[i]), E::load(up[i]), E::load(dact[i]), dg, du);
    dgate[i] = E::store(dg);
    dup[i] = E::store(du);
  }
}

void check_args(const char* op, DType dtype, int64_t count) {
  check_float_dtype(op, "tensors", dtype, false);
  SPPO_CHECK(count >= 0, op, ": count must be >= 0 (got ", count, ")");
}

}  // namespace

void swiglu_forward(const void* gate, const void* up, DType dtype, int64_t count, void* act, const Launch& l) {
  check_args("swiglu_forward", dtype, count);
  if (count == 0) return;
  const unsigned grid = grid_for(count, kBlock);
  if (dtype == DType::F32)
    forward_kernel<F32E><<<grid, kBlock, 0, stream_of(l)>>>(static_cast<const float*>(gate),
                                                            static_cast<const float*>(up), count,
                                                            static_cast<float*>(act));
  else
    forward_kernel<BF16E><<<grid, kBlock, 0, stream_of(l)>>>(static_cast<const uint16_t*>(gate),
                                                             static_cast<const uint16_t*>(up), count,
                                                             static_cast<uint16_t*>(act));
  check_cuda(cudaGetLastError(), "swiglu_forward launch");
}

void swiglu_backward(const void* gate, const void* up, const void* dact, DType dtype, int64_t count, void* dgate,
                     void* dup, const Launch& l) {
  check_args("swiglu_backward", dtype, count);
  if (count == 0) return;
  const unsigned grid = grid_for(count, kBlock);
  if (dtype == DType::F32)
    backward_kernel<F32E><<<grid, kBlock, 0, stream_of(l)>>>(
        static_cast<const float*>(gate), static_cast<const float*>(up), static_cast<const float*>(dact), count,
        static_cast<float*>(dgate), static_cast<float*>(dup));
  else
    backward_kernel<BF16E><<<grid, kBlock, 0, stream_of(l)>>>(
        static_cast<const uint16_t*>(gate), static_cast<const uint16_t*>(up), static_cast<const uint16_t*>(dact), count,
        static_cast<uint16_t*>(dgate), static_cast<uint16_t*>(dup));
  check_cuda(cudaGetLastError(), "swiglu_backward launch");
}

}  // namespace cuda
}  // namespace sppo
