// CUDA rotary embeddings (kernels/rope.h) with the CPU's per-element math (kernels/rope_math.h):
// the angle is one float32 product, cos/sin are evaluated in double and rounded once, rotate_half
// is the same expression. One thread per table entry (tables) and per rotated pair (apply), in
// grid-stride loops; apply works in place and each pair is read and written by one thread.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/host_helpers.h"
#include "kernels/rope.h"
#include "kernels/rope_math.h"

namespace sppo {
namespace cuda {
namespace {

constexpr int kBlock = 256;

// cos/sin [n, half]: entry e is (row e / half, frequency e % half).
template <typename E>
__global__ void __launch_bounds__(kBlock)
    tables_kernel(const float* __restrict__ inv_freq, int64_t half, const int32_t* __restrict__ positions, int64_t n,
                  typename E::raw* __restrict__ cos_out, typename E::raw* __restrict__ sin_out) {
  const int64_t total = n * half;
  for (int64_t e = blockIdx.x * int64_t(kBlock) + threadIdx.x; e < total; e += int64_t(gridDim.x) * kBlock) {
    const float angle = rope_math::angle(inv_freq[e % half], positions[e / half]);
    cos_out[e] = E::store(rope_math::cos_of(angle));
    sin_out[e] = E::store(rope_math::sin_of(angle));
  }
}

// x [n, heads, head_dim] in place: pair e is (row-and-head e / half, i = e % half), elements i and
// i + half of that head; cos/sin of (row, i).
template <typename E>
__global__ void __launch_bounds__(kBlock)
    apply_kernel(typename E::raw* x, int64_t n, int64_t heads, int64_t half, const typename E::raw* __restrict__ cos_t,
                 const typename E::raw* __restrict__ sin_t, bool inverse) {
  const int64_t total = n * heads * half;
  for (int64_t e = blockIdx.x * int64_t(kBlock) + threadIdx.x; e < total; e += int64_t(gridDim.x) * kBlock) {
    const int64_t i = e % half, rh = e / half, r = rh / heads;
    typename E::raw* v = x + rh * 2 * half;
    float a = E::load(v[i]), b = E::load(v[i + half]);
    rope_math::rotate(a, b, E::load(cos_t[r * half + i]), E::load(sin_t[r * half + i]), inverse);
    v[i] = E::store(a);
    v[i + half] = E::store(b);
  }
}

void check_type(const char* op, DType dtype) {
  check_float_dtype(op, "tensors", dtype, false);
}

}  // namespace

void rope_tables(const float* inv_freq, int64_t half, const int32_t* positions, int64_t n, DType dtype, void* cos_out,
                 void* sin_out, const Launch& l) {
  check_type("rope_tables", dtype);
  SPPO_CHECK(half >= 0 && n >= 0, "rope_tables: negative size (half = ", half, ", n = ", n, ")");
  if (n * half == 0) return;
  const unsigned grid = grid_for(n * half, kBlock);
  if (dtype == DType::F32)
    tables_kernel<F32E><<<grid, kBlock, 0, stream_of(l)>>>(inv_freq, half, positions, n, static_cast<float*>(cos_out),
                                                           static_cast<float*>(sin_out));
  else
    tables_kernel<BF16E><<<grid, kBlock, 0, stream_of(l)>>>(inv_freq, half, positions, n,
                                                            static_cast<uint16_t*>(cos_out),
                                                            static_cast<uint16_t*>(sin_out));
  check_cuda(cudaGetLastError(), "rope_tables launch");
}

void rope_apply(void* x, DType dtype, int64_t n, int64_t heads, int64_t head_dim, const void* cos_t, const void* sin_t,
                bool inverse, const Launch& l) {
  check_type("rope_apply", dtype);
  SPPO_CHECK(n >= 0 && heads >= 0 && head_dim >= 0 && head_dim % 2 == 0, "rope_apply: bad shape (n = ", n,
             ", heads = ", heads, ", head_dim = ", head_dim, ")");
  const int64_t half = head_dim / 2;
  if (n * heads * half == 0) return;
  const unsigned grid = grid_for(n * heads * half, kBlock);
  if (dtype == DType::F32)
    apply_kernel<F32E><<<grid, kBlock, 0, stream_of(l)>>>(static_cast<float*>(x), n, heads, half,
                                                          static_cast<const float*>(cos_t),
                                                          static_cast<const float*>(sin_t), inverse);
  else
    apply_kernel<BF16E><<<grid, kBlock, 0, stream_of(l)>>>(static_cast<uint16_t*>(x), n, heads, half,
                                                           static_cast<const uint16_t*>(cos_t),
                                                           static_cast<const uint16_t*>(sin_t), inverse);
  check_cuda(cudaGetLastError(), "rope_apply launch");
}

}  // namespace cuda
}  // namespace sppo
