// Shared-memory tiles of the CUDA attention kernels (cuda/attention.cu, cuda/attention_decode.cu):
// rows of head_dim loaded from global memory into fp32 tiles, and the two tile products of a warp.
//
// Shared tiles are float, row-major, with a row stride of HD + 4 floats (HD: the head dim rounded
// up to 32, 64, 128 or 256; the columns past the real head_dim are zero, so they add nothing).
// A warp works on a (rows x columns) block of a product with its lanes as 4 row groups x 8
// column groups: lane = ry * 8 + cx holds rows ry + 4k (k < RL) and columns cx + 8i (i < CL);
// in an output row of HD it holds the float4s at cx * 4 + 32 jj (jj < HD / 32). With these strides
// every shared load of the products is conflict-free per quarter warp: the 8 column groups read 8
// rows whose float4s start 4 banks apart, the 4 row groups read 4 rows 4 banks apart (broadcast
// within a row group), and value rows are read as 8 consecutive float4s.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"

namespace sppo {
namespace cuda {
namespace attn {

__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void st4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ float4 zero4() { return make_float4(0.f, 0.f, 0.f, 0.f); }
__device__ __forceinline__ float get(const float4& v, int e) { return e == 0 ? v.x : e == 1 ? v.y : e == 2 ? v.z : v.w; }

// Loads `rows` rows of head_dim `hd` into dst[r * ld + d] (d < HD) as float, zero where d >= hd or
// where row_ptr(r) is null. `vec`: every row pointer is 16-byte aligned and hd is a multiple of
// the 16-byte vector (kVec<E>), so rows are read in 16-byte loads; otherwise element by element.
// Consecutive threads read consecutive elements of a row (coalesced). NT: threads in the block.
template <typename E, int HD, int NT, typename RowPtr>
__device__ __forceinline__ void load_rows(float* __restrict__ dst, int ld, int rows, int hd, bool vec,
                                          RowPtr row_ptr) {
  using raw = typename E::raw;
  if (vec) {
    constexpr int V = kVec<E>;   // 4 (F32) or 8 (BF16) elements per 16 bytes
    constexpr int CPR = HD / V;  // 16-byte chunks per padded row
    for (int e = threadIdx.x; e < rows * CPR; e += NT) {
      const int r = e / CPR, d = (e % CPR) * V;
      const raw* p = row_ptr(r);
      float f[V];
      if (p != nullptr && d < hd) {
        unpack<E>(*reinterpret_cast<const uint4*>(p + d), f);
      } else {
#pragma unroll
        for (int i = 0; i < V; ++i) f[i] = 0.f;
      }
#pragma unroll
      for (int i = 0; i < V; i += 4) st4(dst + r * ld + d + i, make_float4(f[i], f[i + 1], f[i + 2], f[i + 3]));
    }
  } else {
    for (int e = threadIdx.x; e < rows * HD; e += NT) {
      const int r = e / HD, d = e % HD;
      const raw* p = row_ptr(r);
      dst[r * ld + d] = (p != nullptr && d < hd) ? E::load(p[d]) : 0.f;
    }
  }
}

// acc[k][i] = sum over d < HD of A[(ry + 4k) * lda + d] * B[(cx + 8i) * ldb + d], summed in d order
// with fused multiply-adds. A: the warp's rows; B: the tile's columns (lda, ldb = HD + 4).
template <int HD, int RL, int CL>
__device__ __forceinline__ void dot_tile(const float* __restrict__ A, int lda, const float* __restrict__ B, int ldb,
                                         int ry, int cx, float (&acc)[RL][CL]) {
#pragma unroll
  for (int k = 0; k < RL; ++k)
#pragma unroll
    for (int i = 0; i < CL; ++i) acc[k][i] = 0.f;
#pragma unroll 2
  for (int d = 0; d < HD; d += 4) {
    float4 a[RL], b[CL];
#pragma unroll
    for (int k = 0; k < RL; ++k) a[k] = ld4(A + (ry + 4 * k) * lda + d);
#pragma unroll
    for (int i = 0; i < CL; ++i) b[i] = ld4(B + (cx + 8 * i) * ldb + d);
#pragma unroll
    for (int k = 0; k < RL; ++k)
#pragma unroll
      for (int i = 0; i < CL; ++i) {
        float s = acc[k][i];
        s = fmaf(a[k].x, b[i].x, s);
        s = fmaf(a[k].y, b[i].y, s);
        s = fmaf(a[k].z, b[i].z, s);
        s = fmaf(a[k].w, b[i].w, s);
        acc[k][i] = s;
      }
  }
}

// The warp's values of a (rows x columns) block into its staging rows: P[(ry + 4k) * ldp + cx + 8i].
template <int RL, int CL>
__device__ __forceinline__ void stage(float* __restrict__ P, int ldp, int ry, int cx, const float (&val)[RL][CL]) {
#pragma unroll
  for (int k = 0; k < RL; ++k)
#pragma unroll
    for (int i = 0; i < CL; ++i) P[(ry + 4 * k) * ldp + cx + 8 * i] = val[k][i];
}

// o[k][jj] += sum over c < NC of P[(ry + 4k) * ldp + c] * B[c * ldb + cx * 4 + 32 jj .. + 3], in c
// order with fused multiply-adds: the warp's staged weights times a tile of rows of HD.
template <int HD, int RL, int NC>
__device__ __forceinline__ void accum_tile(const float* __restrict__ P, int ldp, const float* __restrict__ B, int ldb,
                                           int ry, int cx, float4 (&o)[RL][HD / 32]) {
#pragma unroll 1
  for (int c = 0; c < NC; c += 4) {
    float4 p[RL];
#pragma unroll
    for (int k = 0; k < RL; ++k) p[k] = ld4(P + (ry + 4 * k) * ldp + c);
#pragma unroll
    for (int cc = 0; cc < 4; ++cc) {
      const float* brow = B + (c + cc) * ldb + cx * 4;
#pragma unroll
      for (int jj = 0; jj < HD / 32; ++jj) {
        const float4 v = ld4(brow + 32 * jj);
#pragma unroll
        for (int k = 0; k < RL; ++k) {
          const float w = get(p[k], cc);
          o[k][jj].x = fmaf(w, v.x, o[k][jj].x);
          o[k][jj].y = fmaf(w, v.y, o[k][jj].y);
          o[k][jj].z = fmaf(w, v.z, o[k][jj].z);
          o[k][jj].w = fmaf(w, v.w, o[k][jj].w);
        }
      }
    }
  }
}

// Max and sum over the 8 column groups of a row group (lanes that differ in bits 0..2): a fixed
// butterfly, so every lane of the group gets the same bits.
__device__ __forceinline__ float group_max(float v) {
#pragma unroll
  for (int o = 1; o < 8; o <<= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int o = 1; o < 8; o <<= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace attn
}  // namespace cuda
}  // namespace sppo
