// CUDA sum of squares for global-norm clipping (kernels/global_norm.h), in double and
// deterministic (no atomics): pass 1, one block per chunk of kNormChunk elements (the CPU's
// chunks) adds its elements' squares in double (per-thread strided sums, then a fixed tree) into
// part[chunk]; pass 2, one block adds the chunks' partials (each thread a fixed strided subset,
// then the tree) and adds the total to *acc. The order is fixed by n alone, so a step's norm is
// the same bits every run; it differs from the CPU's in-order sums only by double rounding. BF16
// gradients are widened exactly (optim_math::load_grad) before they are squared.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/host_helpers.h"
#include "kernels/global_norm.h"
#include "kernels/optim_math.h"

namespace sppo {
namespace cuda {
namespace {

constexpr int kBlock = 512;

// G: float, or uint16_t (bf16 bits, widened exactly as on the CPU).
template <typename G>
__global__ void __launch_bounds__(kBlock)
    chunk_kernel(const G* __restrict__ g, int64_t n, double* __restrict__ part) {
  __shared__ double smem[32];
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * kNormChunk;
  const int64_t i1 = i0 + kNormChunk < n ? i0 + kNormChunk : n;
  double s = 0;
  for (int64_t i = i0 + threadIdx.x; i < i1; i += kBlock) {
    const double v = optim_math::load_grad(g[i]);
    s += v * v;
  }
  s = block_sum(s, smem);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

__global__ void __launch_bounds__(kBlock)
    total_kernel(const double* __restrict__ part, int64_t chunks, double* acc) {
  __shared__ double smem[32];
  double s = 0;
  for (int64_t c = threadIdx.x; c < chunks; c += kBlock) s += part[c];
  s = block_sum(s, smem);
  if (threadIdx.x == 0) *acc += s;
}

}  // namespace

void sum_squares(const void* g, DType dtype, int64_t n, double* acc, const Launch& l) {
  SPPO_CHECK(n >= 0, "sum_squares: n must be >= 0 (got ", n, ")");
  SPPO_CHECK(dtype == DType::F32 || dtype == DType::BF16, "sum_squares: CUDA gradients must be F32 or BF16 (got ",
             dtype_name(dtype), ")");
  if (n == 0) return;
  const int64_t chunks = (n + kNormChunk - 1) / kNormChunk;
  SPPO_CHECK(chunks <= 0x7fffffff, "sum_squares: n = ", n, " is too large for the CUDA kernel");
  cudaStream_t s = stream_of(l);
  Scratch part(static_cast<std::size_t>(chunks) * sizeof(double), s);
  if (dtype == DType::F32)
    chunk_kernel<<<static_cast<unsigned>(chunks), kBlock, 0, s>>>(static_cast<const float*>(g), n, part.at<double>());
  else
    chunk_kernel<<<static_cast<unsigned>(chunks), kBlock, 0, s>>>(static_cast<const uint16_t*>(g), n,
                                                                  part.at<double>());
  total_kernel<<<1, kBlock, 0, s>>>(part.at<double>(), chunks, acc);
  check_cuda(cudaGetLastError(), "sum_squares launch");
}

}  // namespace cuda
}  // namespace sppo
