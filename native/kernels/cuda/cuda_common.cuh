// Shared device helpers for the CUDA kernels: element loads/stores by dtype, 16-byte vector
// access, warp/block reductions, and report() into the stream's deferred error word (checked by
// the host at the step boundary, so errors name the field like the CPU backend's).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"
#include "core/half_bits.h"
#include "core/error.h"
#include "runtime/cuda_check.h"
#include "runtime/cuda_launch.h"
#include "runtime/device_errors.h"

namespace sppo {
namespace cuda {

inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }
inline cudaStream_t stream_of(const Launch& l) { return static_cast<cudaStream_t>(l.stream); }

// ---- element types ----------------------------------------------------------------------------
struct F32E {
  using raw = float;
  __device__ __forceinline__ static float load(raw x) { return x; }
  __device__ __forceinline__ static raw store(float x) { return x; }
};
struct BF16E {
  using raw = uint16_t;
  __device__ __forceinline__ static float load(raw h) { return __uint_as_float(static_cast<uint32_t>(h) << 16); }
  // Round to nearest even, quiet NaN: bit-identical to sppo::f32_to_bf16 on the host.
  __device__ __forceinline__ static raw store(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<raw>((u >> 16) | 0x40u);
    return static_cast<raw>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
};

// IEEE half (PairRM's fp16 mode): the host's conversion code (core/half_bits.h), so a store is
// bit-identical to sppo::f32_to_f16 (integer work where __float2half_rn is one instruction; the
// F16 kernels are the memory-bound PairRM ops, where it does not show).
struct F16E {
  using raw = uint16_t;
  __device__ __forceinline__ static float load(raw h) { return __uint_as_float(half_bits::f16_to_f32(h)); }
  __device__ __forceinline__ static raw store(float f) { return half_bits::f32_to_f16(__float_as_uint(f)); }
};

// Elements per 16-byte vector.
template <typename E>
constexpr int kVec = 16 / sizeof(typename E::raw);

template <typename E>
__device__ __forceinline__ void unpack(const uint4& u, float* out) {
  const typename E::raw* r = reinterpret_cast<const typename E::raw*>(&u);
#pragma unroll
  for (int k = 0; k < kVec<E>; ++k) out[k] = E::load(r[k]);
}

// A row split into a scalar head (up to 16-byte alignment), 16-byte vectors, and a scalar tail.
struct RowSplit {
  int64_t head, nvec, tail_start;
};
template <typename E>
__device__ __forceinline__ RowSplit split_row(const typename E::raw* row, int64_t V) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(row);
  int64_t head = static_cast<int64_t>(((16 - (addr & 15)) & 15) / sizeof(typename E::raw));
  if (head > V) head = V;
  const int64_t nvec = (V - head) / kVec<E>;
  return {head, nvec, head + nvec * kVec<E>};
}

// ---- reductions -------------------------------------------------------------------------------
// Full-warp shuffles: every lane of the warp must call them, so blocks that use these are whole
// warps (blockDim.x a multiple of 32), and no thread may return before the call unless the whole
// block does (a partial warp's mask would name lanes that do not exist: undefined on the GPU).
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block; every thread gets the result. `smem` holds 32 doubles.
__device__ __forceinline__ double block_sum(double v, double* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = lane < nw ? smem[lane] : 0.0;
  return warp_sum(v);
}

// ---- deferred errors (runtime/device_errors.h) ---------------------------------------------------
// Packs (index, launch, code) so that the lowest index wins; the launch id comes from
// DeviceErrors::expect on the host.
__device__ __forceinline__ void report(unsigned long long* err, int64_t index, unsigned launch, unsigned code) {
  atomicMin(err, (static_cast<unsigned long long>(index) << 24) | (static_cast<unsigned long long>(launch) << 8) | code);
}

}  // namespace cuda
}  // namespace sppo
