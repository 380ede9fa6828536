// CUDA backend of kernels/logprob.h. One block per row. Forward reads the row once with 16-byte
// loads and an online softmax (running max and rescaled sum per thread, merged across the block);
// backward reads the row once more and writes the gradient, in place when asked. fp32 math on
// f32 or bf16 storage. Bad input is reported to the stream's deferred error word and thrown, with
// the CPU backend's messages, at the next check (no synchronisation per launch).
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/logprob.h"

namespace sppo {
namespace cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
enum : unsigned { kErrLabel = 1, kErrLogits = 2, kErrGrad = 3, kErrLse = 4, kErrMask = 5, kErrTokenLogp = 6 };

// 2^x on the special-function unit (relative error ~2^-22; results below 2^-126 flush to 0,
// which only drops probabilities far below fp32 resolution). Plain exp2f adds denormal handling.
__device__ __forceinline__ float ex2(float x) {
#ifdef SPPO_CUDA_EMULATED
  const float y = exp2f(x);  // the emulator (emu/) has no special-function unit: the host's exp2f
  return y < 1.17549435e-38f ? 0.f : y;  // ... with its flush of results below 2^-126
#else
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#endif
}

// Running softmax state of one thread: max m, sum s of exp(x - m), and z = sum x*0 (NaN iff
// some x was inf or NaN).
struct Online {
  float m = -INFINITY, s = 0.f, z = 0.f;
  __device__ __forceinline__ void add(const float* v, int k) {
    float lm = v[0];
    for (int i = 1; i < k; ++i) lm = fmaxf(lm, v[i]);
    for (int i = 0; i < k; ++i) z += v[i] * 0.f;
    if (lm > m) {
      s *= ex2((m - lm) * kLog2e);  // 0 when m was -inf
      m = lm;
    }
    for (int i = 0; i < k; ++i) s += ex2((v[i] - m) * kLog2e);
  }
  __device__ __forceinline__ void merge(float om, float os, float oz) {
    z += oz;
    const float nm = fmaxf(m, om);
    if (nm == -INFINITY) return;
    // Rounded products and sum (never contracted into an FMA): the two lanes of a butterfly merge
    // the same pair in opposite order, and must get the same bits.
    const float a = m == -INFINITY ? 0.f : __fmul_rn(s, ex2((m - nm) * kLog2e));
    const float b = om == -INFINITY ? 0.f : __fmul_rn(os, ex2((om - nm) * kLog2e));
    s = __fadd_rn(a, b);
    m = nm;
  }
};

// Merges the states of a warp's 32 lanes; every lane gets the result.
__device__ __forceinline__ void warp_merge(Online& st) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    float om = __shfl_xor_sync(0xffffffffu, st.m, o);
    float os = __shfl_xor_sync(0xffffffffu, st.s, o);
    float oz = __shfl_xor_sync(0xffffffffu, st.z, o);
    st.merge(om, os, oz);
  }
}

// Reduces every thread's state to the block; all threads get the result in `st`.
template <int BLOCK>
__device__ __forceinline__ void block_merge(Online& st) {
  __shared__ float sm[32], ss[32], sz[32];
  warp_merge(st);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  constexpr int kWarps = BLOCK / 32;
  __syncthreads();  // the shared arrays may still be read by a previous call
  if (lane == 0) sm[warp] = st.m, ss[warp] = st.s, sz[warp] = st.z;
  __syncthreads();
  Online r;
  if (lane < kWarps) r.m = sm[lane], r.s = ss[lane], r.z = sz[lane];
  warp_merge(r);
  st = r;
}

// Loads 16 bytes: through the read-only (non-coherent) path only when the kernel never writes
// the row; the in-place backward writes it, so it must use a plain load.
template <bool READ_ONLY>
__device__ __forceinline__ uint4 load16(const uint4* p) {
  if constexpr (READ_ONLY) return __ldg(p);
  else return *p;
}

// Online softmax over one row; returns lse (NaN and *finite = false on a non-finite element).
template <typename E, int BLOCK, bool READ_ONLY>
__device__ __forceinline__ float row_lse(const typename E::raw* row, int64_t V, bool* finite) {
  constexpr int K = kVec<E>;
  Online st;
  const RowSplit sp = split_row<E>(row, V);
  for (int64_t i = threadIdx.x; i < sp.head; i += BLOCK) {
    float x = E::load(row[i]);
    st.add(&x, 1);
  }
  const uint4* vp = reinterpret_cast<const uint4*>(row + sp.head);
  // Two 16-byte loads in flight per thread.
  for (int64_t j = threadIdx.x; j < sp.nvec; j += 2 * BLOCK) {
    const uint4 u0 = load16<READ_ONLY>(vp + j);
    const bool two = j + BLOCK < sp.nvec;
    uint4 u1 = u0;
    if (two) u1 = load16<READ_ONLY>(vp + j + BLOCK);
    float v[K];
    unpack<E>(u0, v);
    st.add(v, K);
    if (two) {
      unpack<E>(u1, v);
      st.add(v, K);
    }
  }
  for (int64_t i = sp.tail_start + threadIdx.x; i < V; i += BLOCK) {
    float x = E::load(row[i]);
    st.add(&x, 1);
  }
  block_merge<BLOCK>(st);
  *finite = (st.z == 0.f);
  return st.m + logf(st.s);
}

template <typename E, int BLOCK>
__global__ void __launch_bounds__(BLOCK)
    forward_kernel(const typename E::raw* __restrict__ logits, int64_t V, const int32_t* __restrict__ labels,
                   float* __restrict__ token_logp, float* __restrict__ lse, unsigned long long* err, unsigned launch) {
  const int64_t n = blockIdx.x;
  const typename E::raw* row = logits + n * V;
  const int32_t y = labels[n];
  const bool ok_label = y == kIgnoreIndex || (y >= 0 && y < V);
  bool finite;
  const float l = row_lse<E, BLOCK, true>(row, V, &finite);
  if (threadIdx.x == 0) {
    if (!ok_label) report(err, n, launch, kErrLabel);
    if (!finite) report(err, n, launch, kErrLogits);
    if (lse) lse[n] = finite ? l : NAN;
    token_logp[n] = !finite ? NAN : (y == kIgnoreIndex || !ok_label) ? 0.f : E::load(row[y]) - l;
  }
}

template <typename E, typename G, int BLOCK>
__global__ void __launch_bounds__(BLOCK)
    backward_kernel(const typename E::raw* logits, int64_t V, const int32_t* __restrict__ labels,
                    const float* __restrict__ grad_token, const float* __restrict__ lse_in, typename G::raw* out,
                    unsigned long long* err, unsigned launch) {
  // No __restrict__ on logits/out: they alias when in place (each element is read, then written,
  // by the same thread).
  constexpr int K = kVec<E>;
  const int64_t n = blockIdx.x;
  const typename E::raw* row = logits + n * V;
  typename G::raw* orow = out + n * V;
  const int32_t y = labels[n];
  if (!(y == kIgnoreIndex || (y >= 0 && y < V))) {
    if (threadIdx.x == 0) report(err, n, launch, kErrLabel);
    return;
  }
  if (y == kIgnoreIndex) {
    for (int64_t i = threadIdx.x; i < V; i += BLOCK) orow[i] = G::store(0.f);
    return;
  }
  const float g = grad_token[n];
  float l;
  if (lse_in) {
    l = lse_in[n];
    if (!isfinite(l)) {
      if (threadIdx.x == 0) report(err, n, launch, kErrLse);
      return;
    }
  } else {
    bool finite;
    l = row_lse<E, BLOCK, false>(row, V, &finite);
    if (!finite) {
      if (threadIdx.x == 0) report(err, n, launch, kErrLogits);
      return;
    }
  }
  if (!isfinite(g)) {
    if (threadIdx.x == 0) report(err, n, launch, kErrGrad);
    return;
  }
  auto value = [&](int64_t i, float x) {
    const float p = ex2((x - l) * kLog2e);
    return i == y ? g * (1.f - p) : -g * p;
  };
  const RowSplit sp = split_row<E>(row, V);
  for (int64_t i = threadIdx.x; i < sp.head; i += BLOCK) orow[i] = G::store(value(i, E::load(row[i])));
  const uint4* vp = reinterpret_cast<const uint4*>(row + sp.head);
  // Vector stores when the output has the input's type and 16-byte phase (always in place).
  const bool vec_out = sizeof(typename G::raw) == sizeof(typename E::raw) &&
                       ((reinterpret_cast<uintptr_t>(orow) ^ reinterpret_cast<uintptr_t>(row)) & 15) == 0;
  for (int64_t j = threadIdx.x; j < sp.nvec; j += BLOCK) {
    const uint4 u = vp[j];
    float v[K];
    unpack<E>(u, v);
    const int64_t base = sp.head + j * K;
    if (vec_out) {
      uint4 w;
      typename G::raw* wr = reinterpret_cast<typename G::raw*>(&w);
#pragma unroll
      for (int k = 0; k < K; ++k) wr[k] = G::store(value(base + k, v[k]));
      reinterpret_cast<uint4*>(orow + sp.head)[j] = w;
    } else {
#pragma unroll
      for (int k = 0; k < K; ++k) orow[base + k] = G::store(value(base + k, v[k]));
    }
  }
  for (int64_t i = sp.tail_start + threadIdx.x; i < V; i += BLOCK) orow[i] = G::store(value(i, E::load(row[i])));
}

template <int BLOCK>
__global__ void __launch_bounds__(BLOCK)
    masked_sum_kernel(const float* __restrict__ tl, const uint8_t* __restrict__ mask, int64_t T, float* __restrict__ out,
                      unsigned long long* err, unsigned launch) {
  __shared__ double smem[32];
  const int64_t b = blockIdx.x;
  double s = 0;
  for (int64_t t = threadIdx.x; t < T; t += BLOCK) {
    const int64_t i = b * T + t;
    const uint8_t m = mask[i];
    if (m > 1) report(err, i, launch, kErrMask);
    if (m == 1) {
      const float v = tl[i];
      if (!isfinite(v)) report(err, i, launch, kErrTokenLogp);
      s += v;
    }
  }
  s = block_sum(s, smem);
  if (threadIdx.x == 0) out[b] = static_cast<float>(s);
}

// ---- host side ------------------------------------------------------------------------------

template <typename T>
T fetch(const T* dev, int64_t i) {
  T v{};
  check_cuda(cudaMemcpy(&v, dev + i, sizeof(T), cudaMemcpyDeviceToHost), "fetch for an error message");
  return v;
}

// Throws the CPU backend's message for a reported error.
void throw_reported(unsigned code, int64_t n, const void* logits, DType dtype, int64_t V, const int32_t* labels,
                    const float* grad_token, const float* lse, int64_t T = 0, const float* tl = nullptr) {
  switch (code) {
    case kErrLabel:
      fail("labels[", n, "] = ", fetch(labels, n), " is out of range (need 0 <= label < V = ", V,
           ", or -100 to ignore)");
    case kErrLogits: {
      const size_t es = dtype_size(dtype);
      std::vector<unsigned char> row(static_cast<size_t>(V) * es);
      check_cuda(cudaMemcpy(row.data(), static_cast<const unsigned char*>(logits) + n * V * es, row.size(),
                            cudaMemcpyDeviceToHost),
                 "fetch for an error message");
      for (int64_t v = 0; v < V; ++v) {
        float x;
        if (dtype == DType::F32) std::memcpy(&x, &row[v * 4], 4);
        else x = bf16_to_f32(static_cast<uint16_t>(row[v * 2] | (row[v * 2 + 1] << 8)));
        if (!std::isfinite(x)) fail("logits[", n, ", ", v, "] is not finite (", x, ")");
      }
      fail("logits row ", n, " is not finite");
    }
    case kErrGrad: fail("grad_token[", n, "] is not finite (", fetch(grad_token, n), ")");
    case kErrLse: fail("lse[", n, "] is not finite (", fetch(lse, n), ")");
    case kErrMask: fail("mask[", n / T, ", ", n % T, "] = ", int(fetch(reinterpret_cast<const uint8_t*>(logits), n)),
                        " (must be 0 or 1)");
    case kErrTokenLogp: fail("token_logp[", n / T, ", ", n % T, "] is not finite (", fetch(tl, n), ")");
    default: fail("CUDA logprob kernel reported error code ", code, " at ", n);
  }
}

void check_args(DType dtype, int64_t N, int64_t V) {
  SPPO_CHECK(dtype == DType::F32 || dtype == DType::BF16, "logits dtype must be F32 or BF16 on CUDA (got ",
             dtype_name(dtype), ")");
  SPPO_CHECK(N >= 0, "N must be >= 0 (got ", N, ")");
  SPPO_CHECK(V >= 1, "V must be >= 1 (got ", V, ")");
  SPPO_CHECK(N <= 0x7fffffff, "N must be < 2^31 rows on CUDA (got ", N, ")");
}

// Block size by row length: enough threads to cover the row with 16-byte vectors.
template <typename Launch>
void by_block(int64_t V, Launch&& launch) {
  if (V >= 16384) launch(std::integral_constant<int, 512>{});
  else if (V >= 1024) launch(std::integral_constant<int, 256>{});
  else launch(std::integral_constant<int, 64>{});
}

}  // namespace

void logprob_forward(const void* logits, DType dtype, int64_t N, int64_t V, const int32_t* labels,
                     float* token_logp, float* lse, const Launch& l) {
  check_args(dtype, N, V);
  if (N == 0) return;
  SPPO_CHECK(logits && labels && token_logp, "logits, labels and token_logp must not be null");
  cudaStream_t s = stream_of(l);
  unsigned long long* err = l.errors->word();
  const unsigned launch = l.errors->expect([=](unsigned code, int64_t n) {
    throw_reported(code, n, logits, dtype, V, labels, nullptr, nullptr);
  });
  by_block(V, [&](auto block) {
    constexpr int B = decltype(block)::value;
    if (dtype == DType::F32)
      forward_kernel<F32E, B><<<static_cast<unsigned>(N), B, 0, s>>>(static_cast<const float*>(logits), V, labels,
                                                                     token_logp, lse, err, launch);
    else
      forward_kernel<BF16E, B><<<static_cast<unsigned>(N), B, 0, s>>>(static_cast<const uint16_t*>(logits), V, labels,
                                                                      token_logp, lse, err, launch);
  });
  check_cuda(cudaGetLastError(), "logprob_forward launch");
}

void logprob_backward(const void* logits, DType dtype, int64_t N, int64_t V, const int32_t* labels,
                      const float* grad_token, const float* lse, void* grad_logits, DType grad_dtype, const Launch& l) {
  check_args(dtype, N, V);
  SPPO_CHECK(grad_dtype == DType::F32 || grad_dtype == DType::BF16,
             "grad_logits dtype must be F32 or BF16 on CUDA (got ", dtype_name(grad_dtype), ")");
  SPPO_CHECK(grad_logits != logits || grad_dtype == dtype,
             "in-place backward needs grad_logits dtype == logits dtype (got ", dtype_name(grad_dtype), " over ",
             dtype_name(dtype), ")");
  if (N == 0) return;
  SPPO_CHECK(logits && labels && grad_token && grad_logits, "logits, labels, grad_token and grad_logits must not be null");
  cudaStream_t s = stream_of(l);
  unsigned long long* err = l.errors->word();
  const unsigned launch = l.errors->expect([=](unsigned code, int64_t n) {
    throw_reported(code, n, logits, dtype, V, labels, grad_token, lse);
  });
  by_block(V, [&](auto block) {
    constexpr int B = decltype(block)::value;
    const unsigned grid = static_cast<unsigned>(N);
    const float* x32 = static_cast<const float*>(logits);
    const uint16_t* x16 = static_cast<const uint16_t*>(logits);
    float* o32 = static_cast<float*>(grad_logits);
    uint16_t* o16 = static_cast<uint16_t*>(grad_logits);
    if (dtype == DType::F32 && grad_dtype == DType::F32)
      backward_kernel<F32E, F32E, B><<<grid, B, 0, s>>>(x32, V, labels, grad_token, lse, o32, err, launch);
    else if (dtype == DType::F32)
      backward_kernel<F32E, BF16E, B><<<grid, B, 0, s>>>(x32, V, labels, grad_token, lse, o16, err, launch);
    else if (grad_dtype == DType::F32)
      backward_kernel<BF16E, F32E, B><<<grid, B, 0, s>>>(x16, V, labels, grad_token, lse, o32, err, launch);
    else
      backward_kernel<BF16E, BF16E, B><<<grid, B, 0, s>>>(x16, V, labels, grad_token, lse, o16, err, launch);
  });
  check_cuda(cudaGetLastError(), "logprob_backward launch");
}

void masked_sequence_sum(const float* token_logp, const uint8_t* mask, int64_t B, int64_t T, float* seq_logp,
                         const Launch& l) {
  SPPO_CHECK(B >= 0 && T >= 0, "B and T must be >= 0 (got B = ", B, ", T = ", T, ")");
  SPPO_CHECK(B <= 0x7fffffff, "B must be < 2^31 on CUDA (got ", B, ")");
  if (B == 0) return;
  SPPO_CHECK(seq_logp != nullptr, "seq_logp must not be null");
  SPPO_CHECK(T == 0 || (token_logp != nullptr && mask != nullptr), "token_logp and mask must not be null");
  cudaStream_t s = stream_of(l);
  unsigned long long* err = l.errors->word();
  const unsigned launch = l.errors->expect([=](unsigned code, int64_t n) {
    throw_reported(code, n, mask, DType::F32, 0, nullptr, nullptr, nullptr, T, token_logp);
  });
  masked_sum_kernel<256><<<static_cast<unsigned>(B), 256, 0, s>>>(token_logp, mask, T, seq_logp, err, launch);
  check_cuda(cudaGetLastError(), "masked_sequence_sum launch");
}

}  // namespace cuda
}  // namespace sppo
