// CUDA disentangled attention (kernels/disentangled_attention.h), forward, over packed sequences:
// a straightforward kernel, correct first.
//   validate_kernel: one block checks start and rel_index as cpu/disentangled_attention.cpp does
//     (its messages and order through the deferred error word: start[0] at index 0, sequence i's
//     length at 1 + i, start[S] at 1 + S, rel_index[i] at 2 + S + i) and sets a flag; the
//     attention kernel computes nothing unless it is set, so bad offsets are never followed.
//   attention_kernel: one block per (query row, head). The row's sequence by binary search in
//     start; its q row in shared memory; each warp takes keys in turn and reduces the three dot
//     products over the head's columns (q.k, q.pos_k[d], k.pos_q[d], d = rel_index[i - j + max_len
//     - 1]) into a row of scores in shared memory (max_len floats); the softmax as the CPU's (max,
//     exp, sum, p = e / sum); then out = sum_j p_j v_j, columns over threads and keys over
//     groups of threads, the groups' partial sums added in a fixed order. All in fp32 (BF16 or F16
//     elements widened, the output rounded once). Deterministic: no atomics.
// A faster kernel would be flash-attention shaped: a block per (64-query tile, head, sequence),
// K/V and the relative rows the tile reaches (at most 2 * 64 - 1 + 64 bucket rows) staged in
// shared memory, q.k^T, q.pos_k^T and k.pos_q^T as BF16 tensor-core tiles, the two relative terms
// gathered by bucket from their small products, an online softmax in registers, and P.V on tensor
// cores; no row of scores, and each K/V row read once per tile instead of once per query.
#include <climits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/host_helpers.h"
#include "kernels/disentangled_attention.h"

namespace sppo {
namespace cuda {
namespace {

constexpr int kBlock = 128;
constexpr int kWarps = kBlock / 32;
enum : unsigned { kErrStart0 = 1, kErrLength = 2, kErrEnd = 3, kErrRel = 4 };

__global__ void __launch_bounds__(256)
    validate_kernel(const int32_t* __restrict__ start, int64_t S, int64_t N, int64_t max_len,
                    const int32_t* __restrict__ rel_index, int64_t n_rel, int64_t P, int* __restrict__ ok,
                    unsigned long long* err, unsigned launch) {
  bool bad = false;
  if (threadIdx.x == 0 && start[0] != 0) {
    report(err, 0, launch, kErrStart0);
    bad = true;
  }
  for (int64_t i = threadIdx.x; i < S; i += blockDim.x) {
    const int64_t len = static_cast<int64_t>(start[i + 1]) - start[i];
    if (len < 0 || len > max_len) {
      report(err, 1 + i, launch, kErrLength);
      bad = true;
    }
  }
  if (threadIdx.x == 0 && start[S] != N) {
    report(err, 1 + S, launch, kErrEnd);
    bad = true;
  }
  for (int64_t i = threadIdx.x; i < n_rel; i += blockDim.x) {
    const int32_t r = rel_index[i];
    if (r < 0 || r >= P) {
      report(err, 2 + S + i, launch, kErrRel);
      bad = true;
    }
  }
  bad = __syncthreads_or(bad);
  if (threadIdx.x == 0) *ok = bad ? 0 : 1;
}

__device__ __forceinline__ float warp_sum_f(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float block_max_f(float v, float* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = lane < kWarps ? smem[lane] : -INFINITY;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

struct Dims {
  int64_t S, nh, hd, max_len;
  bool c2p, p2c;
  float scale;
};

// Dynamic shared memory: q row [hd], scores [max_len], partial outputs [kBlock]. Static: the
// reductions' kRed floats and doubles, which count against the same per-block limits (the 48 KiB
// a launch may use without opting in, and the opt-in maximum).
constexpr int kRed = 32;
constexpr std::size_t kStaticSmem = kRed * (sizeof(float) + sizeof(double));
template <typename E>
__global__ void __launch_bounds__(kBlock)
    attention_kernel(Dims dm, const typename E::raw* __restrict__ q, const typename E::raw* __restrict__ k,
                     const typename E::raw* __restrict__ v, const typename E::raw* __restrict__ pos_q,
                     const typename E::raw* __restrict__ pos_k, const int32_t* __restrict__ rel_index,
                     const int32_t* __restrict__ start, const int* __restrict__ ok, typename E::raw* __restrict__ out) {
  extern __shared__ float sm[];
  __shared__ float red[kRed];
  __shared__ double dred[kRed];
  if (*ok == 0) return;  // start or rel_index is bad (reported by validate_kernel)
  const int64_t i = blockIdx.x, h = blockIdx.y, hd = dm.hd, ld = dm.nh * dm.hd, c0 = h * hd;
  const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
  // The sequence holding row i: start[s] <= i < start[s + 1] (start is non-decreasing, 0 .. N).
  int64_t lo = 0, hi = dm.S;
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (start[mid] <= i) lo = mid;
    else hi = mid;
  }
  const int64_t r0 = start[lo], L = start[lo + 1] - r0, qi = i - r0;
  float* qs = sm;
  float* sc = sm + hd;
  float* part = sc + dm.max_len;
  for (int64_t c = t; c < hd; c += kBlock) qs[c] = E::load(q[i * ld + c0 + c]);
  __syncthreads();
  const bool rel = dm.c2p || dm.p2c;
  const int32_t* idx = rel_index + (dm.max_len - 1);  // idx[qi - j], valid: L <= max_len
  for (int64_t j = warp; j < L; j += kWarps) {
    const typename E::raw* kr = k + (r0 + j) * ld + c0;
    const int64_t d = rel ? idx[qi - j] : 0;
    float qk = 0.f, c2p = 0.f, p2c = 0.f;
    for (int64_t c = lane; c < hd; c += 32) {
      const float kc = E::load(kr[c]);
      qk += qs[c] * kc;
      if (dm.c2p) c2p += qs[c] * E::load(pos_k[d * ld + c0 + c]);
      if (dm.p2c) p2c += kc * E::load(pos_q[d * ld + c0 + c]);
    }
    qk = warp_sum_f(qk);
    if (dm.c2p) c2p = warp_sum_f(c2p);
    if (dm.p2c) p2c = warp_sum_f(p2c);
    if (lane == 0) {
      float x = qk;
      if (dm.c2p) x += c2p;
      if (dm.p2c) x += p2c;
      sc[j] = x * dm.scale;
    }
  }
  __syncthreads();
  float mx = -INFINITY;
  for (int64_t j = t; j < L; j += kBlock) mx = fmaxf(mx, sc[j]);
  mx = block_max_f(mx, red);
  double sum = 0;  // fp32 terms, added in double through a fixed tree
  for (int64_t j = t; j < L; j += kBlock) {
    const float e = expf(sc[j] - mx);
    sc[j] = e;
    sum += e;
  }
  const float inv = 1.f / static_cast<float>(block_sum(sum, dred));  // block_sum syncs: sc is complete
  for (int64_t j = t; j < L; j += kBlock) sc[j] *= inv;
  __syncthreads();
  // out_i = sum_j p_j v_j: groups of hd threads (when hd <= kBlock) take keys in turn.
  const int64_t groups = hd <= kBlock ? kBlock / hd : 1;
  if (groups > 1) {
    const int64_t g = t / hd, c = t % hd;
    float acc = 0.f;
    if (g < groups)
      for (int64_t j = g; j < L; j += groups) acc += sc[j] * E::load(v[(r0 + j) * ld + c0 + c]);
    part[t] = acc;
    __syncthreads();
    if (t < hd) {
      float o = 0.f;
      for (int64_t gg = 0; gg < groups; ++gg) o += part[gg * hd + t];
      out[i * ld + c0 + t] = E::store(o);
    }
  } else {
    for (int64_t c = t; c < hd; c += kBlock) {
      float acc = 0.f;
      for (int64_t j = 0; j < L; ++j) acc += sc[j] * E::load(v[(r0 + j) * ld + c0 + c]);
      out[i * ld + c0 + c] = E::store(acc);
    }
  }
}

template <typename E>
void launch_attention(const RelAttnShape& s, const void* q, const void* k, const void* v, const void* pos_q,
                      const void* pos_k, const int32_t* rel_index, const int32_t* start, const int* ok, void* out,
                      std::size_t smem, cudaStream_t st) {
  using R = typename E::raw;
  auto kernel = attention_kernel<E>;
  if (smem + kStaticSmem > 48 * 1024)
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
               "disentangled_attention: shared memory size");
  const Dims dm{s.S, s.nh, s.hd, s.max_len, s.c2p, s.p2c, static_cast<float>(s.scale)};
  const dim3 grid(static_cast<unsigned>(s.N), static_cast<unsigned>(s.nh));
  kernel<<<grid, kBlock, smem, st>>>(dm, static_cast<const R*>(q), static_cast<const R*>(k), static_cast<const R*>(v),
                                     static_cast<const R*>(pos_q), static_cast<const R*>(pos_k), rel_index, start, ok,
                                     static_cast<R*>(out));
}

}  // namespace

void disentangled_attention(const RelAttnShape& s, DType dtype, const void* q, const void* k, const void* v,
                            const void* pos_q, const void* pos_k, const int32_t* rel_index, const int32_t* start,
                            void* out, const Launch& l) {
  const char* op = "disentangled_attention";
  check_float_dtype(op, "activations", dtype, true);
  SPPO_CHECK(s.S >= 0 && s.N >= 0 && s.nh > 0 && s.hd > 0 && s.max_len >= 1 && s.P >= 0, op, ": bad shape (S ", s.S,
             ", N ", s.N, ", heads ", s.nh, ", head_dim ", s.hd, ", P ", s.P, ", max_len ", s.max_len, ")");
  SPPO_CHECK(s.N <= INT_MAX && s.nh <= 65535, op, ": N must be < 2^31 and heads <= 65535 on CUDA (got N ", s.N,
             ", heads ", s.nh, ")");
  SPPO_CHECK(s.S < (int64_t{1} << 36) && s.max_len < (int64_t{1} << 36), op, ": S or max_len too large for CUDA");
  const bool rel = s.c2p || s.p2c;
  const std::size_t smem = static_cast<std::size_t>(s.hd + s.max_len + kBlock) * sizeof(float);
  int dev = 0, limit = 48 * 1024;
  check_cuda(cudaGetDevice(&dev), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
             "cudaDeviceGetAttribute(shared memory)");
  SPPO_CHECK(smem + kStaticSmem <= static_cast<std::size_t>(limit), op, ": sequences of up to ", s.max_len,
             " tokens (head_dim ", s.hd, ") need ", smem + kStaticSmem, " bytes of shared memory per block, more than this GPU's ", limit,
             " (the CUDA kernel keeps a row of scores in shared memory)");
  cudaStream_t st = stream_of(l);
  Scratch ok(sizeof(int), st);
  const int64_t n_rel = rel ? 2 * s.max_len - 1 : 0;
  const int64_t S = s.S, N = s.N, max_len = s.max_len, P = s.P;
  const unsigned launch = l.errors->expect([=](unsigned code, int64_t i) {
    if (code == kErrStart0) fail(op, ": start[0] must be 0 (got ", fetch(start, 0), ")");
    if (code == kErrLength) {
      const int64_t len = static_cast<int64_t>(fetch(start, i)) - fetch(start, i - 1);
      fail(op, ": sequence ", i - 1, " has length ", len, " (must be in [0, ", max_len, "])");
    }
    if (code == kErrEnd) fail(op, ": start[S] = ", fetch(start, S), " but N = ", N);
    if (code == kErrRel)
      fail(op, ": rel_index[", i - 2 - S, "] = ", fetch(rel_index, i - 2 - S), " is outside [0, ", P, ")");
    fail("CUDA ", op, " kernel reported error code ", code, " at ", i);
  });
  validate_kernel<<<1, 256, 0, st>>>(start, S, N, max_len, rel_index, n_rel, P, ok.at<int>(), l.errors->word(),
                                     launch);
  if (N > 0) {
    if (dtype == DType::F32)
      launch_attention<F32E>(s, q, k, v, pos_q, pos_k, rel_index, start, ok.at<int>(), out, smem, st);
    else if (dtype == DType::BF16)
      launch_attention<BF16E>(s, q, k, v, pos_q, pos_k, rel_index, start, ok.at<int>(), out, smem, st);
    else
      launch_attention<F16E>(s, q, k, v, pos_q, pos_k, rel_index, start, ok.at<int>(), out, smem, st);
  }
  check_cuda(cudaGetLastError(), "disentangled_attention launch");
}

}  // namespace cuda
}  // namespace sppo
