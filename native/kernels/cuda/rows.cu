// CUDA row gathers, scatters and per-sequence sums (kernels/rows.h). Indices are checked on the
// device and bad ones reported to the stream's deferred error word with the CPU's messages; a
// bad index is skipped (never dereferenced). Everything is deterministic without float atomics:
//   gather_rows:      one block per destination row copies its source row;
//   scatter_add_rows: the contract says the indices are distinct, so every destination row has
//                     one writer. To keep that true for any input (memory safety, and the CPU's
//                     "repeats" message), a first pass takes, per destination row, the lowest i
//                     that names it (an integer atomicMin into a scratch array); the second pass
//                     adds row i only if it is that owner, and reports every other i as a repeat;
//   segment_sum:      one block per segment scans all n entries and adds its own in double
//                     (per-thread strided sums, then a fixed tree): O(n S), for the S sequences
//                     of a batch; block 0 also checks every segment index;
//   expand_segments:  one thread per entry.
#include <climits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/host_helpers.h"
#include "kernels/rows.h"

namespace sppo {
namespace cuda {
namespace {

constexpr int kBlock = 256;
enum : unsigned { kErrRange = 1, kErrRepeat = 2 };

__device__ __forceinline__ bool in_range(int32_t v, int64_t limit) { return v >= 0 && v < limit; }

// Raw element bits are copied or added as E.
template <typename T>
__global__ void __launch_bounds__(kBlock)
    gather_kernel(const T* __restrict__ src, int64_t src_rows, const int32_t* __restrict__ idx, int64_t H,
                  T* __restrict__ dst, unsigned long long* err, unsigned launch) {
  const int64_t i = blockIdx.x;
  const int32_t k = idx[i];
  if (!in_range(k, src_rows)) {
    if (threadIdx.x == 0) report(err, i, launch, kErrRange);
    return;
  }
  const T* s = src + static_cast<int64_t>(k) * H;
  T* d = dst + i * H;
  for (int64_t j = threadIdx.x; j < H; j += kBlock) d[j] = s[j];
}

// Pass 1 of scatter_add_rows: owner[idx[i]] = min i naming it; range errors at index i.
__global__ void owners_kernel(const int32_t* __restrict__ idx, int64_t n, int64_t dst_rows, int32_t* owner,
                              unsigned long long* err, unsigned launch) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int32_t k = idx[i];
    if (!in_range(k, dst_rows)) report(err, i, launch, kErrRange);
    else atomicMin(owner + k, static_cast<int32_t>(i));
  }
}

// Pass 2: block i adds src row i into its destination row if it owns it. A repeat is reported at
// index n + i, so that any range error (index < n) wins, as the CPU checks ranges first.
template <typename E>
__global__ void __launch_bounds__(kBlock)
    scatter_add_kernel(const typename E::raw* __restrict__ src, const int32_t* __restrict__ idx, int64_t n, int64_t H,
                       int64_t dst_rows, const int32_t* __restrict__ owner, typename E::raw* dst,
                       unsigned long long* err, unsigned launch) {
  const int64_t i = blockIdx.x;
  const int32_t k = idx[i];
  if (!in_range(k, dst_rows)) return;  // reported by pass 1
  if (owner[k] != i) {
    if (threadIdx.x == 0) report(err, n + i, launch, kErrRepeat);
    return;
  }
  const typename E::raw* s = src + i * H;
  typename E::raw* d = dst + static_cast<int64_t>(k) * H;
  for (int64_t j = threadIdx.x; j < H; j += kBlock) d[j] = E::store(E::load(d[j]) + E::load(s[j]));
}

// Block s sums x[i] over seg[i] == s in double; block 0 also validates every seg[i].
__global__ void __launch_bounds__(kBlock)
    segment_sum_kernel(const float* __restrict__ x, const int32_t* __restrict__ seg, int64_t n, int64_t S,
                       float* __restrict__ out, unsigned long long* err, unsigned launch) {
  __shared__ double smem[32];
  const int64_t s = blockIdx.x;
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += kBlock) {
    const int32_t k = seg[i];
    if (s == 0 && !in_range(k, S)) report(err, i, launch, kErrRange);
    if (k == s) acc += static_cast<double>(x[i]);
  }
  acc = block_sum(acc, smem);
  if (threadIdx.x == 0 && s < S) out[s] = static_cast<float>(acc);
}

__global__ void __launch_bounds__(kBlock)
    expand_kernel(const float* __restrict__ x, const int32_t* __restrict__ seg, int64_t n, int64_t S, double scale,
                  float* __restrict__ out, unsigned long long* err, unsigned launch) {
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < n; i += int64_t(gridDim.x) * kBlock) {
    const int32_t k = seg[i];
    if (!in_range(k, S)) {
      report(err, i, launch, kErrRange);
      continue;
    }
    out[i] = static_cast<float>(static_cast<double>(x[k]) * scale);
  }
}

// The CPU's messages (cpu/rows.cpp). `base` is subtracted from repeat indices (see pass 2).
DeviceErrors::Explain explain(const char* op, const char* what, const int32_t* idx, int64_t limit, int64_t n = 0) {
  return [=](unsigned code, int64_t i) {
    if (code == kErrRange) fail(op, ": ", what, "[", i, "] = ", fetch(idx, i), " is outside [0, ", limit, ")");
    if (code == kErrRepeat)
      fail(op, ": ", what, "[", i - n, "] = ", fetch(idx, i - n), " repeats (indices must be distinct)");
    fail("CUDA ", op, " kernel reported error code ", code, " at ", i);
  };
}

// copies_bits: gather, which takes F16 rows too (host_helpers.h check_float_dtype).
void check_rows(const char* op, DType dtype, int64_t n, int64_t H, int64_t rows, bool copies_bits) {
  check_float_dtype(op, "rows", dtype, copies_bits);
  SPPO_CHECK(n >= 0 && H >= 0 && rows >= 0, op, ": negative size (n = ", n, ", H = ", H, ", rows = ", rows, ")");
  SPPO_CHECK(n <= INT_MAX && rows <= INT_MAX, op, ": n and the row count must be < 2^31 on CUDA");
}

}  // namespace

void gather_rows(const void* src, int64_t src_rows, const int32_t* idx, int64_t n, int64_t H, DType dtype, void* dst,
                 const Launch& l) {
  const char* op = "gather_rows";
  check_rows(op, dtype, n, H, src_rows, true);
  if (n == 0) return;
  const unsigned launch = l.errors->expect(explain(op, "idx", idx, src_rows));
  const unsigned grid = static_cast<unsigned>(n);
  if (dtype == DType::F32)
    gather_kernel<float><<<grid, kBlock, 0, stream_of(l)>>>(static_cast<const float*>(src), src_rows, idx, H,
                                                            static_cast<float*>(dst), l.errors->word(), launch);
  else
    gather_kernel<uint16_t><<<grid, kBlock, 0, stream_of(l)>>>(static_cast<const uint16_t*>(src), src_rows, idx, H,
                                                               static_cast<uint16_t*>(dst), l.errors->word(), launch);
  check_cuda(cudaGetLastError(), "gather_rows launch");
}

void scatter_add_rows(const void* src, const int32_t* idx, int64_t n, int64_t H, int64_t dst_rows, DType dtype,
                      void* dst, const Launch& l) {
  const char* op = "scatter_add_rows";
  check_rows(op, dtype, n, H, dst_rows, false);
  if (n == 0) return;
  cudaStream_t s = stream_of(l);
  Scratch owner(static_cast<std::size_t>(dst_rows) * sizeof(int32_t), s);
  // 0x7f bytes: 0x7f7f7f7f, above any row index (n < 2^31), so "no owner yet".
  if (dst_rows) check_cuda(cudaMemsetAsync(owner.at<int32_t>(), 0x7f, dst_rows * sizeof(int32_t), s), "owner reset");
  const unsigned launch = l.errors->expect(explain(op, "idx", idx, dst_rows, n));
  owners_kernel<<<grid_for(n, 256), 256, 0, s>>>(idx, n, dst_rows, owner.at<int32_t>(), l.errors->word(), launch);
  const unsigned grid = static_cast<unsigned>(n);
  if (dtype == DType::F32)
    scatter_add_kernel<F32E><<<grid, kBlock, 0, s>>>(static_cast<const float*>(src), idx, n, H, dst_rows,
                                                     owner.at<int32_t>(), static_cast<float*>(dst), l.errors->word(),
                                                     launch);
  else
    scatter_add_kernel<BF16E><<<grid, kBlock, 0, s>>>(static_cast<const uint16_t*>(src), idx, n, H, dst_rows,
                                                      owner.at<int32_t>(), static_cast<uint16_t*>(dst),
                                                      l.errors->word(), launch);
  check_cuda(cudaGetLastError(), "scatter_add_rows launch");
}

void segment_sum(const float* x, const int32_t* seg, int64_t n, int64_t S, float* out, const Launch& l) {
  const char* op = "segment_sum";
  SPPO_CHECK(n >= 0 && S >= 0, op, ": negative size (n = ", n, ", S = ", S, ")");
  SPPO_CHECK(S < INT_MAX, op, ": S must be < 2^31 on CUDA (got ", S, ")");
  if (n == 0 && S == 0) return;
  const unsigned launch = l.errors->expect(explain(op, "seg", seg, S));
  // At least one block, so that the indices are checked even when S == 0.
  const unsigned grid = static_cast<unsigned>(S > 0 ? S : 1);
  segment_sum_kernel<<<grid, kBlock, 0, stream_of(l)>>>(x, seg, n, S, out, l.errors->word(), launch);
  check_cuda(cudaGetLastError(), "segment_sum launch");
}

void expand_segments(const float* x, const int32_t* seg, int64_t n, int64_t S, double scale, float* out,
                     const Launch& l) {
  const char* op = "expand_segments";
  SPPO_CHECK(n >= 0 && S >= 0, op, ": negative size (n = ", n, ", S = ", S, ")");
  if (n == 0) return;
  const unsigned launch = l.errors->expect(explain(op, "seg", seg, S));
  expand_kernel<<<grid_for(n, kBlock), kBlock, 0, stream_of(l)>>>(x, seg, n, S, scale, out, l.errors->word(), launch);
  check_cuda(cudaGetLastError(), "expand_segments launch");
}

}  // namespace cuda
}  // namespace sppo
