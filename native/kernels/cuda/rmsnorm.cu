// CUDA RMSNorm forward and backward (kernels/rmsnorm.h), with the per-element formulas of
// kernels/rmsnorm_math.h (the CPU's). Row sums: each thread adds its strided elements in fp32,
// the block adds the threads' partials in a fixed tree in double (block_sum), so a row's result
// does not depend on the other rows or on timing.
//   forward, backward dx: one block per row;
//   backward dw (deterministic, no atomics): pass 1, block (column block, chunk of kDwRows rows)
//   adds its rows' terms in row order into partial[chunk, j]; pass 2 adds the chunks' partials in
//   chunk order onto dw[j] (a BF16 dw: widened, the sum rounded once in this final write).
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/host_helpers.h"
#include "kernels/rmsnorm.h"
#include "kernels/rmsnorm_math.h"

namespace sppo {
namespace cuda {
namespace {

constexpr int kBlock = 256;    // threads per row (forward, dx) and columns per dw block
constexpr int kDwRows = 64;    // rows summed per dw partial

template <typename E>
__global__ void __launch_bounds__(kBlock)
    forward_kernel(const typename E::raw* __restrict__ x, const typename E::raw* __restrict__ w, int64_t H, double eps,
                   typename E::raw* __restrict__ y, float* __restrict__ rstd) {
  __shared__ double smem[32];
  const int64_t r = blockIdx.x;
  const typename E::raw* xr = x + r * H;
  float ss = 0.f;
  for (int64_t j = threadIdx.x; j < H; j += kBlock) {
    const float v = E::load(xr[j]);
    ss += v * v;
  }
  const float rs = rmsnorm_math::rstd(static_cast<float>(block_sum(ss, smem)), H, eps);
  if (threadIdx.x == 0) rstd[r] = rs;
  typename E::raw* yr = y + r * H;
  for (int64_t j = threadIdx.x; j < H; j += kBlock)
    yr[j] = E::store(rmsnorm_math::forward(E::load(xr[j]), E::load(w[j]), rs));
}

// dx: one block per row. No __restrict__ on dx: it is read when accumulating.
template <typename E>
__global__ void __launch_bounds__(kBlock)
    dx_kernel(const typename E::raw* __restrict__ x, const typename E::raw* __restrict__ w,
              const float* __restrict__ rstd, const typename E::raw* __restrict__ dy, int64_t H, typename E::raw* dx,
              bool accumulate) {
  __shared__ double smem[32];
  const int64_t r = blockIdx.x;
  const typename E::raw* xr = x + r * H;
  const typename E::raw* dyr = dy + r * H;
  float dot = 0.f;
  for (int64_t j = threadIdx.x; j < H; j += kBlock) dot += E::load(dyr[j]) * E::load(w[j]) * E::load(xr[j]);
  const float rs = rstd[r];
  const float c = rmsnorm_math::backward_coef(static_cast<float>(block_sum(dot, smem)), rs, H);
  typename E::raw* dxr = dx + r * H;
  for (int64_t j = threadIdx.x; j < H; j += kBlock) {
    const float g = rmsnorm_math::backward_dx(E::load(xr[j]), E::load(w[j]), E::load(dyr[j]), rs, c);
    dxr[j] = E::store(accumulate ? E::load(dxr[j]) + g : g);
  }
}

// Pass 1 of dw: grid (column blocks, row chunks); thread j sums its chunk's rows in order.
template <typename E>
__global__ void __launch_bounds__(kBlock)
    dw_partial_kernel(const typename E::raw* __restrict__ x, const typename E::raw* __restrict__ dy,
                      const float* __restrict__ rstd, int64_t n, int64_t H, float* __restrict__ partial) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x;
  if (j >= H) return;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * kDwRows, r1 = r0 + kDwRows < n ? r0 + kDwRows : n;
  float s = 0.f;
  for (int64_t r = r0; r < r1; ++r) s += rmsnorm_math::dw_term(E::load(x[r * H + j]), E::load(dy[r * H + j]), rstd[r]);
  partial[static_cast<int64_t>(blockIdx.y) * H + j] = s;
}

// Pass 2 of dw: dw[j] += the chunks' partials, in chunk order; D is dw's type (BF16: widened, the
// fp32 sum rounded once here, as the CPU's emulation rounds).
template <typename D>
__global__ void __launch_bounds__(kBlock)
    dw_reduce_kernel(const float* __restrict__ partial, int64_t chunks, int64_t H, typename D::raw* __restrict__ dw) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x;
  if (j >= H) return;
  float s = 0.f;
  for (int64_t c = 0; c < chunks; ++c) s += partial[c * H + j];
  dw[j] = D::store(D::load(dw[j]) + s);
}

void check_args(const char* op, DType dtype, int64_t n, int64_t H) {
  check_float_dtype(op, "activations", dtype, false);
  SPPO_CHECK(n >= 0 && H >= 0, op, ": negative size (n = ", n, ", H = ", H, ")");
  SPPO_CHECK(n <= 0x7fffffff, op, ": n must be < 2^31 on CUDA (got ", n, ")");
  SPPO_CHECK((n + kDwRows - 1) / kDwRows <= 65535, op, ": n = ", n, " rows is too many for the CUDA kernel");
}

}  // namespace

void rmsnorm_forward(const void* x, const void* w, DType dtype, int64_t n, int64_t H, double eps, void* y, float* rstd,
                     const Launch& l) {
  check_args("rmsnorm_forward", dtype, n, H);
  if (n == 0) return;
  cudaStream_t s = stream_of(l);
  const unsigned grid = static_cast<unsigned>(n);
  if (dtype == DType::F32)
    forward_kernel<F32E><<<grid, kBlock, 0, s>>>(static_cast<const float*>(x), static_cast<const float*>(w), H, eps,
                                                 static_cast<float*>(y), rstd);
  else
    forward_kernel<BF16E><<<grid, kBlock, 0, s>>>(static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(w), H,
                                                  eps, static_cast<uint16_t*>(y), rstd);
  check_cuda(cudaGetLastError(), "rmsnorm_forward launch");
}

void rmsnorm_backward(const void* x, const void* w, const float* rstd, const void* dy, DType dtype, int64_t n,
                      int64_t H, void* dx, void* dw, DType dw_dtype, bool accumulate_dx, const Launch& l) {
  check_args("rmsnorm_backward", dtype, n, H);
  SPPO_CHECK(dw_dtype == DType::F32 || (dw_dtype == DType::BF16 && dtype == DType::BF16),
             "rmsnorm_backward: CUDA dw must be F32, or BF16 with BF16 activations (got ", dtype_name(dw_dtype), ")");
  if (n == 0 || H == 0) return;
  cudaStream_t s = stream_of(l);
  const int64_t chunks = (n + kDwRows - 1) / kDwRows;
  Scratch partial(static_cast<std::size_t>(chunks * H) * sizeof(float), s);
  const dim3 pgrid(static_cast<unsigned>((H + kBlock - 1) / kBlock), static_cast<unsigned>(chunks));
  const unsigned cols = static_cast<unsigned>((H + kBlock - 1) / kBlock), rows = static_cast<unsigned>(n);
  if (dtype == DType::F32) {
    using R = float;
    dx_kernel<F32E><<<rows, kBlock, 0, s>>>(static_cast<const R*>(x), static_cast<const R*>(w), rstd,
                                            static_cast<const R*>(dy), H, static_cast<R*>(dx), accumulate_dx);
    dw_partial_kernel<F32E><<<pgrid, kBlock, 0, s>>>(static_cast<const R*>(x), static_cast<const R*>(dy), rstd, n, H,
                                                     partial.at<float>());
  } else {
    using R = uint16_t;
    dx_kernel<BF16E><<<rows, kBlock, 0, s>>>(static_cast<const R*>(x), static_cast<const R*>(w), rstd,
                                             static_cast<const R*>(dy), H, static_cast<R*>(dx), accumulate_dx);
    dw_partial_kernel<BF16E><<<pgrid, kBlock, 0, s>>>(static_cast<const R*>(x), static_cast<const R*>(dy), rstd, n, H,
                                                      partial.at<float>());
  }
  if (dw_dtype == DType::F32)
    dw_reduce_kernel<F32E><<<cols, kBlock, 0, s>>>(partial.at<float>(), chunks, H, static_cast<float*>(dw));
  else
    dw_reduce_kernel<BF16E><<<cols, kBlock, 0, s>>>(partial.at<float>(), chunks, H, static_cast<uint16_t*>(dw));
  check_cuda(cudaGetLastError(), "rmsnorm_backward launch");
}

}  // namespace cuda
}  // namespace sppo
