// CUDA LayerNorm forward (kernels/layernorm.h), with the formulas of kernels/layernorm_math.h (the
// CPU's): one block per row, all arithmetic in double like the CPU. Row sums: each thread adds
// its strided elements in double, the block adds the threads' partials in a fixed tree
// (block_sum), so a row's result does not depend on the other rows or on timing. Two passes
// (mean, then squared deviations) as the CPU, then one rounding to the element type. y may be x:
// each element is read and then written by the same thread, after both sums.
#include <climits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/host_helpers.h"
#include "kernels/layernorm.h"
#include "kernels/layernorm_math.h"

namespace sppo {
namespace cuda {
namespace {

constexpr int kBlock = 256;

template <typename E>
__device__ __forceinline__ double load_d(typename E::raw v) {
  return static_cast<double>(E::load(v));
}

// No __restrict__ on x and y: they may be one array.
template <typename E>
__global__ void __launch_bounds__(kBlock)
    forward_kernel(const typename E::raw* x, const typename E::raw* __restrict__ w,
                   const typename E::raw* __restrict__ b, int64_t H, double eps, typename E::raw* y) {
  __shared__ double smem[32];
  const int64_t r = blockIdx.x;
  const typename E::raw* xr = x + r * H;
  double s = 0;
  for (int64_t j = threadIdx.x; j < H; j += kBlock) s += load_d<E>(xr[j]);
  const double mean = block_sum(s, smem) / static_cast<double>(H);
  double ss = 0;
  for (int64_t j = threadIdx.x; j < H; j += kBlock) {
    const double d = load_d<E>(xr[j]) - mean;
    ss += d * d;
  }
  const double rs = layernorm_math::rstd(block_sum(ss, smem), H, eps);
  typename E::raw* yr = y + r * H;
  for (int64_t j = threadIdx.x; j < H; j += kBlock)
    yr[j] = E::store(static_cast<float>(layernorm_math::apply(load_d<E>(xr[j]), mean, rs, load_d<E>(w[j]),
                                                              load_d<E>(b[j]))));
}

}  // namespace

void layernorm_forward(const void* x, const void* w, const void* b, DType dtype, int64_t n, int64_t H, double eps,
                       void* y, const Launch& l) {
  const char* op = "layernorm_forward";
  check_float_dtype(op, "activations", dtype, true);
  SPPO_CHECK(n >= 0 && H > 0, op, ": bad shape (n ", n, ", H ", H, ")");
  SPPO_CHECK(eps >= 0, op, ": eps must be >= 0 (got ", eps, ")");
  SPPO_CHECK(n <= INT_MAX, op, ": n must be < 2^31 on CUDA (got ", n, ")");
  if (n == 0) return;
  cudaStream_t s = stream_of(l);
  const unsigned grid = static_cast<unsigned>(n);
  if (dtype == DType::F32)
    forward_kernel<F32E><<<grid, kBlock, 0, s>>>(static_cast<const float*>(x), static_cast<const float*>(w),
                                                 static_cast<const float*>(b), H, eps, static_cast<float*>(y));
  else if (dtype == DType::BF16)
    forward_kernel<BF16E><<<grid, kBlock, 0, s>>>(static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(w),
                                                  static_cast<const uint16_t*>(b), H, eps, static_cast<uint16_t*>(y));
  else
    forward_kernel<F16E><<<grid, kBlock, 0, s>>>(static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(w),
                                                 static_cast<const uint16_t*>(b), H, eps, static_cast<uint16_t*>(y));
  check_cuda(cudaGetLastError(), "layernorm_forward launch");
}

}  // namespace cuda
}  // namespace sppo
