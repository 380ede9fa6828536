// CUDA next-token choice (kernels/sample.h), one block per row, with kernels/sample_math.h's
// arithmetic so that the CPU and the GPU pick the same token with the same logp bits:
//   sample_weights: block maximum, then w = sample_math::weight(x, m, t) (the CPU's AVX2 bits);
//   argmax_rows:    per-thread first maximum over strided ids, then a (value desc, id asc) tree;
//   sample_pick:    the exact integer pick without sorting, in passes over the row's weights
//                   (q = quantize(w) is recomputed from w in every pass, nothing is staged):
//     1. validation (the CPU's checks and order) and the row maximum;
//     2. top-k: the k-th largest q by radix selection, 11-bit digits from bit 41 down (4 passes),
//        with counts: the largest digit whose count, with the counts above it, reaches k;
//     3. top-p: mass by bit length (65 buckets), the cut bucket, then 11-bit digits of q below
//        its leading bit with masses (as cpu/sample.cpp): the selection ends at one value v; the
//        nucleus is {q > v} plus the first m tokens of value v by ascending id, m = the count the
//        CPU's final walk keeps, ceil((need - S) / v);
//     4. the draw: each warp sums the kept q of a contiguous chunk of ids (the value-v tokens'
//        ranks by a scan of their counts), warp 0 scans the chunks, draws r from Philox, and the
//        one warp whose chunk holds r walks it 32 ids at a time (ballot + warp scan).
//   Histograms are integer shared-memory atomics (counts and masses), so the order of additions
//   does not matter; each thread adds runs of equal bins in registers first (near-flat weights
//   put most of a row in one bucket, which would otherwise serialise on one address).
// Bad values are reported to the deferred error word with the CPU's messages: a non-finite
// logit at index r V + j; a weight outside [0, 1] at r (V + 1) + j and a row without a weight
// above 2^-40 at r (V + 1) + V, so that the lowest index is the CPU's first failing check.
// Rows with a bad weight get token -1 and logp NaN (the error is thrown at the step boundary).
#include <climits>
#include <cmath>
#include <cstdint>

#include "core/philox.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/host_helpers.h"
#include "kernels/sample.h"
#include "kernels/sample_math.h"

namespace sppo {
namespace cuda {
namespace {

using u64 = unsigned long long;

constexpr int kRowBlock = 256;    // sample_weights, argmax_rows
constexpr int kPickBlock = 1024;  // sample_pick
constexpr int kPickWarps = kPickBlock / 32;
constexpr int kDigit = 11;
constexpr int kBins = 1 << kDigit;
constexpr int kBinsPerThread = kBins / kPickBlock;
constexpr int kQBits = 41;  // q <= 2^40
static_assert(kBins % kPickBlock == 0 && kBins >= 65, "bins per thread");
static_assert(kPickWarps <= 32, "one warp scans the warps");
enum : unsigned { kErrLogit = 1, kErrWeight = 2, kErrNoWeight = 3 };

// ---- reductions and scans ------------------------------------------------------------------------
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Maximum over the block (every thread gets it); `smem` holds 32 floats.
__device__ __forceinline__ float block_max(float v, float* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = lane < nw ? smem[lane] : -INFINITY;
  return warp_max(v);
}

__device__ __forceinline__ u64 warp_sum_u64(u64 v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ u64 warp_inclusive_u64(u64 v) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const u64 y = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += y;
  }
  return v;
}

// Inclusive prefix sum over the block's threads in thread order; `total` gets the block's sum.
// `smem` holds 32 values.
__device__ __forceinline__ u64 block_inclusive_u64(u64 v, u64* smem, u64& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  constexpr int nw = kPickWarps;
  v = warp_inclusive_u64(v);
  __syncthreads();  // smem may still be read by a previous call
  if (lane == 31) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    u64 s = lane < nw ? smem[lane] : 0;
    s = warp_inclusive_u64(s);
    if (lane < nw) smem[lane] = s;
  }
  __syncthreads();
  total = smem[nw - 1];
  return v + (warp > 0 ? smem[warp - 1] : 0);
}

// ---- the selection step shared by top-k and top-p ------------------------------------------------
struct Sel {
  unsigned d;  // the chosen bin
  u64 base;    // base + the total of the bins above d
};

// With suffix(d) = the sum of hist[e] for e >= d, picks the largest d in [1, nb) with
// base + suffix(d) >= target, else 0 (cpu/sample.cpp's loops from the top bin down), and returns
// it with base + suffix(d + 1). Every thread gets the result; thread t owns bins
// [t kBinsPerThread, (t + 1) kBinsPerThread).
__device__ Sel select_bin(const u64* hist, unsigned nb, u64 base, u64 target, u64* scan, Sel* out) {
  const unsigned b0 = threadIdx.x * kBinsPerThread;
  u64 h[kBinsPerThread], mine = 0;
#pragma unroll
  for (int i = 0; i < kBinsPerThread; ++i) {
    h[i] = b0 + i < nb ? hist[b0 + i] : 0;
    mine += h[i];
  }
  u64 total;
  const u64 incl = block_inclusive_u64(mine, scan, total);
  // suf = suffix(b0 + i) as i advances; after the loop, suffix(b0 + kBinsPerThread).
  u64 suf = total - (incl - mine);
  auto holds = [&](unsigned d, u64 s) { return d < nb && (d == 0 || base + s >= target); };
#pragma unroll
  for (int i = 0; i < kBinsPerThread; ++i) {
    const unsigned d = b0 + i;
    const u64 next = suf - h[i];
    if (holds(d, suf) && !holds(d + 1, next)) *out = Sel{d, base + next};
    suf = next;
  }
  __syncthreads();
  const Sel s = *out;
  __syncthreads();  // *out is written again by the next call
  return s;
}

// One histogram pass over a row: hist[0, nb) = the sum of val over the ids that key() accepts
// (key(q, bin, val) -> bool). Runs of one bin are added up in registers before the atomic.
template <typename Key>
__device__ __forceinline__ void histogram(u64* hist, unsigned nb, const float* __restrict__ wr, int64_t V, Key key) {
  for (unsigned b = threadIdx.x; b < nb; b += kPickBlock) hist[b] = 0;
  __syncthreads();
  unsigned run_bin = 0;
  u64 run = 0;
  for (int64_t j = threadIdx.x; j < V; j += kPickBlock) {
    unsigned bin;
    u64 val;
    if (!key(sample_math::quantize(wr[j]), bin, val)) continue;
    if (bin != run_bin && run) {
      atomicAdd(hist + run_bin, run);
      run = 0;
    }
    run_bin = bin;
    run += val;
  }
  if (run) atomicAdd(hist + run_bin, run);
  __syncthreads();
}

// ---- kernels --------------------------------------------------------------------------------------
template <typename E>
__global__ void __launch_bounds__(kRowBlock)
    weights_kernel(const typename E::raw* __restrict__ logits, int64_t V, float t, float* __restrict__ w,
                   unsigned long long* err, unsigned launch) {
  __shared__ float smem[32];
  const int64_t r = blockIdx.x;
  const typename E::raw* x = logits + r * V;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += kRowBlock) {
    const float v = E::load(x[j]);
    if (!isfinite(v)) report(err, r * V + j, launch, kErrLogit);
    m = fmaxf(m, v);
  }
  m = block_max(m, smem);  // exact in any order (+0 and -0 give the same weights)
  float* wr = w + r * V;
  for (int64_t j = threadIdx.x; j < V; j += kRowBlock) wr[j] = sample_math::weight(E::load(x[j]), m, t);
}

// (value, id) with the larger value, the smaller id on equal values; id INT_MAX = none yet.
__device__ __forceinline__ void better(float& v, int32_t& i, float ov, int32_t oi) {
  if (oi == INT_MAX) return;
  if (i == INT_MAX || ov > v || (ov == v && oi < i)) v = ov, i = oi;
}

template <typename E>
__global__ void __launch_bounds__(kRowBlock)
    argmax_kernel(const typename E::raw* __restrict__ logits, int64_t V, int32_t* __restrict__ tokens,
                  unsigned long long* err, unsigned launch) {
  __shared__ float sv[32];
  __shared__ int32_t si[32];
  const int64_t r = blockIdx.x;
  const typename E::raw* x = logits + r * V;
  float best = -INFINITY;
  int32_t id = INT_MAX;
  for (int64_t j = threadIdx.x; j < V; j += kRowBlock) {  // ascending: '>' keeps the first
    const float v = E::load(x[j]);
    if (!isfinite(v)) {
      report(err, r * V + j, launch, kErrLogit);
      continue;
    }
    if (id == INT_MAX || v > best) best = v, id = static_cast<int32_t>(j);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, id, o);
    better(best, id, ov, oi);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  constexpr int nw = kRowBlock / 32;
  if (lane == 0) sv[warp] = best, si[warp] = id;
  __syncthreads();
  if (warp == 0) {
    best = lane < nw ? sv[lane] : -INFINITY;
    id = lane < nw ? si[lane] : INT_MAX;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, best, o);
      const int32_t oi = __shfl_xor_sync(0xffffffffu, id, o);
      better(best, id, ov, oi);
    }
    if (lane == 0) tokens[r] = id == INT_MAX ? 0 : id;  // INT_MAX: a row of non-finite logits (reported)
  }
}

__global__ void __launch_bounds__(kPickBlock)
    pick_kernel(const float* __restrict__ w, int64_t V, int64_t top_k, double top_p,
                const SampleStream* __restrict__ streams, int32_t* __restrict__ tokens, float* __restrict__ logp,
                unsigned long long* err, unsigned launch) {
  __shared__ u64 hist[kBins];
  __shared__ u64 scan[32];
  __shared__ float fsm[32];
  __shared__ Sel sel;
  __shared__ u64 w_gt[32], w_eq[32], w_kbase[32], w_ebase[32], w_kept[32];
  __shared__ u64 drawn[2];
  const int64_t r = blockIdx.x;
  const float* wr = w + r * V;
  const int t = threadIdx.x, lane = t & 31, wid = t >> 5;

  // 1. The CPU's validation: every weight in [0, 1] (NaN fails), then some q >= 1.
  bool bad = false;
  float mx = 0.f;
  for (int64_t j = t; j < V; j += kPickBlock) {
    const float x = wr[j];
    if (!(x >= 0.f && x <= 1.f)) {
      report(err, r * (V + 1) + j, launch, kErrWeight);
      bad = true;
    } else {
      mx = fmaxf(mx, x);
    }
  }
  bad = __syncthreads_or(bad);
  mx = block_max(mx, fsm);
  if (!bad && static_cast<double>(mx) * sample_math::kScale < 1.0) {
    if (t == 0) report(err, r * (V + 1) + V, launch, kErrNoWeight);
    bad = true;
  }
  if (bad) {  // uniform over the block
    if (t == 0) {
      tokens[r] = -1;
      logp[r] = NAN;
    }
    return;
  }

  // 2. top-k: kth = the k-th largest q over the whole row (zeros included, as nth_element).
  u64 kth = 0;
  if (top_k > 0 && top_k < V) {
    u64 prefix = 0, above = 0;
    for (int hi = kQBits; hi > 0;) {
      const int lo = hi > kDigit ? hi - kDigit : 0;
      const unsigned nb = 1u << (hi - lo);
      histogram(hist, nb, wr, V, [&](u64 q, unsigned& bin, u64& val) {
        if ((q >> hi) != (prefix >> hi)) return false;
        bin = static_cast<unsigned>((q >> lo) & (nb - 1));
        val = 1;
        return true;
      });
      const Sel s = select_bin(hist, nb, above, static_cast<u64>(top_k), scan, &sel);
      prefix |= static_cast<u64>(s.d) << lo;
      above = s.base;
      hi = lo;
    }
    kth = prefix;
  }
  auto prekept = [&](u64 q) { return q > 0 && q >= kth; };

  // 3. top-p: the value v where the nucleus ends and how many tokens of value v it keeps (m).
  //    v = 0, m = 0: every token that survived top-k stays.
  u64 v = 0, m = 0;
  if (top_p < 1.0) {
    histogram(hist, 65, wr, V, [&](u64 q, unsigned& bin, u64& val) {
      if (!prekept(q)) return false;
      bin = static_cast<unsigned>(sample_math::bit_length(q));
      val = q;
      return true;
    });
    u64 total = 0;
#pragma unroll
    for (int i = 0; i < kBinsPerThread; ++i) {
      const unsigned b = t * kBinsPerThread + i;
      total += b < 65 ? hist[b] : 0;
    }
    block_inclusive_u64(total, scan, total);
    const u64 need = static_cast<u64>(ceil(sample_math::dmul_rn(static_cast<double>(total), top_p)));
    const Sel cut = select_bin(hist, 65, 0, need, scan, &sel);
    if (cut.d > 0) {
      u64 S = cut.base, prefix = u64{1} << (cut.d - 1);
      for (int hi = static_cast<int>(cut.d) - 1; hi > 0;) {
        const int lo = hi > kDigit ? hi - kDigit : 0;
        const unsigned nb = 1u << (hi - lo);
        histogram(hist, nb, wr, V, [&](u64 q, unsigned& bin, u64& val) {
          if (!prekept(q) || (q >> hi) != (prefix >> hi)) return false;
          bin = static_cast<unsigned>((q >> lo) & (nb - 1));
          val = q;
          return true;
        });
        const Sel s = select_bin(hist, nb, S, need, scan, &sel);
        prefix |= static_cast<u64>(s.d) << lo;
        S = s.base;
        hi = lo;
      }
      v = prefix;
      m = need > S ? (need - S - 1) / v + 1 : 0;  // the walk keeps value-v tokens while S < need
    }
  }

  // 4. The draw over the kept tokens in id order: warp wid owns ids [c0, c1).
  const int64_t cw = (V + kPickWarps - 1) / kPickWarps;
  const int64_t c0 = wid * cw < V ? wid * cw : V, c1 = c0 + cw < V ? c0 + cw : V;
  u64 gt = 0, eq = 0;
  for (int64_t j = c0 + lane; j < c1; j += 32) {
    const u64 q = sample_math::quantize(wr[j]);
    if (!prekept(q)) continue;
    if (q > v) gt += q;
    else if (q == v) ++eq;
  }
  gt = warp_sum_u64(gt);
  eq = warp_sum_u64(eq);
  if (lane == 0) w_gt[wid] = gt, w_eq[wid] = eq;
  __syncthreads();
  if (wid == 0) {
    const u64 e = lane < kPickWarps ? w_eq[lane] : 0;
    const u64 e_before = warp_inclusive_u64(e) - e;
    const u64 keep_eq = m > e_before ? (m - e_before < e ? m - e_before : e) : 0;
    const u64 kept = (lane < kPickWarps ? w_gt[lane] : 0) + v * keep_eq;
    const u64 k_incl = warp_inclusive_u64(kept);
    const u64 K = __shfl_sync(0xffffffffu, k_incl, 31);
    if (lane < kPickWarps) w_ebase[lane] = e_before, w_kbase[lane] = k_incl - kept, w_kept[lane] = kept;
    if (lane == 0) {
      const SampleStream st = streams[r];
      drawn[0] = K;
      drawn[1] = sample_math::scaled_draw(philox::bits53(philox::draw(st.seed, st.sequence, st.step)), K);
    }
  }
  __syncthreads();
  const u64 K = drawn[0], target = drawn[1];
  const u64 kbase = w_kbase[wid], kept = w_kept[wid];
  if (kept == 0 || target < kbase || target - kbase >= kept) return;  // warp-uniform
  u64 acc = kbase, rank = w_ebase[wid];
  const unsigned below = (1u << lane) - 1;
  for (int64_t g = c0; g < c1; g += 32) {
    const int64_t j = g + lane;
    u64 q = 0;
    bool keep = false, is_eq = false;
    if (j < c1) {
      q = sample_math::quantize(wr[j]);
      if (prekept(q)) keep = q > v, is_eq = q == v;
    }
    const unsigned eqs = __ballot_sync(0xffffffffu, is_eq);
    if (is_eq) keep = rank + __popc(eqs & below) < m;
    const u64 run = acc + warp_inclusive_u64(keep ? q : 0);
    const unsigned hit = __ballot_sync(0xffffffffu, keep && run > target);
    if (hit) {
      if (lane == __ffs(hit) - 1) {
        tokens[r] = static_cast<int32_t>(j);
        logp[r] = sample_math::logp(q, K);
      }
      return;
    }
    acc = __shfl_sync(0xffffffffu, run, 31);
    rank += __popc(eqs);
  }
}

// ---- host side ------------------------------------------------------------------------------------
float logit_at(const void* logits, DType dtype, int64_t i) {
  if (dtype == DType::F32) return fetch(static_cast<const float*>(logits), i);
  return bf16_to_f32(fetch(static_cast<const uint16_t*>(logits), i));
}

DeviceErrors::Explain explain_logits(const char* op, const void* logits, DType dtype, int64_t V) {
  return [=](unsigned code, int64_t i) {
    if (code == kErrLogit)
      fail("generate: the model produced a non-finite logit (", logit_at(logits, dtype, i), ") for token ", i % V,
           " of row ", i / V, "; are the weights finite?");
    fail("CUDA ", op, " kernel reported error code ", code, " at ", i);
  };
}

void check_logits(const char* op, DType dtype, int64_t n, int64_t V) {
  check_float_dtype(op, "logits", dtype, false);
  SPPO_CHECK(V >= 1, op, ": vocabulary of ", V, " tokens (needs at least 1)");
  SPPO_CHECK(n >= 0, op, ": negative row count (", n, ")");
  SPPO_CHECK(n <= INT_MAX, op, ": n must be < 2^31 rows on CUDA (got ", n, ")");
  SPPO_CHECK(n == 0 || V <= (int64_t{1} << 40) / n, op, ": n x V = ", n, " x ", V,
             " is too many logits for one CUDA call (< 2^40)");
}

}  // namespace

void sample_weights(const void* logits, DType dtype, int64_t n, int64_t V, double temperature, float* w,
                    const Launch& l) {
  const char* op = "sample_weights";
  check_logits(op, dtype, n, V);
  SPPO_CHECK(std::isfinite(temperature) && temperature > 0, "sample_weights: temperature must be > 0 (got ",
             temperature, ")");
  if (n == 0) return;
  const unsigned launch = l.errors->expect(explain_logits(op, logits, dtype, V));
  const float t = static_cast<float>(temperature);
  const unsigned grid = static_cast<unsigned>(n);
  if (dtype == DType::F32)
    weights_kernel<F32E><<<grid, kRowBlock, 0, stream_of(l)>>>(static_cast<const float*>(logits), V, t, w,
                                                               l.errors->word(), launch);
  else
    weights_kernel<BF16E><<<grid, kRowBlock, 0, stream_of(l)>>>(static_cast<const uint16_t*>(logits), V, t, w,
                                                                l.errors->word(), launch);
  check_cuda(cudaGetLastError(), "sample_weights launch");
}

void argmax_rows(const void* logits, DType dtype, int64_t n, int64_t V, int32_t* tokens, const Launch& l) {
  const char* op = "argmax_rows";
  check_logits(op, dtype, n, V);
  if (n == 0) return;
  const unsigned launch = l.errors->expect(explain_logits(op, logits, dtype, V));
  const unsigned grid = static_cast<unsigned>(n);
  if (dtype == DType::F32)
    argmax_kernel<F32E><<<grid, kRowBlock, 0, stream_of(l)>>>(static_cast<const float*>(logits), V, tokens,
                                                              l.errors->word(), launch);
  else
    argmax_kernel<BF16E><<<grid, kRowBlock, 0, stream_of(l)>>>(static_cast<const uint16_t*>(logits), V, tokens,
                                                               l.errors->word(), launch);
  check_cuda(cudaGetLastError(), "argmax_rows launch");
}

void sample_pick(const float* w, int64_t n, int64_t V, int64_t top_k, double top_p, const SampleStream* streams,
                 int32_t* tokens, float* logp, const Launch& l) {
  SPPO_CHECK(V >= 1 && V <= (int64_t{1} << 23), "sample_pick: vocabulary of ", V, " tokens is outside [1, 2^23]");
  SPPO_CHECK(top_k >= 0, "sample_pick: top_k must be >= 0 (got ", top_k, ")");
  SPPO_CHECK(std::isfinite(top_p) && top_p > 0 && top_p <= 1, "sample_pick: top_p must be in (0, 1] (got ", top_p, ")");
  SPPO_CHECK(n >= 0, "sample_pick: negative row count (", n, ")");
  // Error indices are r (V + 1) + j, packed into 40 bits.
  SPPO_CHECK(n <= (int64_t{1} << 40) / (V + 1), "sample_pick: ", n, " rows of ", V,
             " weights are too many for one CUDA call (n (V + 1) < 2^40)");
  SPPO_CHECK(n <= INT_MAX, "sample_pick: n must be < 2^31 rows on CUDA (got ", n, ")");
  if (n == 0) return;
  SPPO_CHECK(streams != nullptr, "sample_pick: streams is null");
  cudaStream_t s = stream_of(l);
  // The streams are host memory: copied to the device on the stream (a pageable copy is staged
  // before cudaMemcpyAsync returns, so the caller may reuse them at once; no synchronisation).
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(SampleStream);
  Scratch dev(bytes, s);
  check_cuda(cudaMemcpyAsync(dev.at<SampleStream>(), streams, bytes, cudaMemcpyHostToDevice, s),
             "sample_pick: copy of the streams");
  const unsigned launch = l.errors->expect([=](unsigned code, int64_t i) {
    const int64_t r = i / (V + 1), j = i % (V + 1);
    if (code == kErrWeight)
      fail("sample_pick: weight ", j, " of row ", r, " is ", fetch(w, r * V + j), " (must be in [0, 1])");
    if (code == kErrNoWeight) fail("sample_pick: row ", r, " has no weight above 2^-40");
    fail("CUDA sample_pick kernel reported error code ", code, " at ", i);
  });
  pick_kernel<<<static_cast<unsigned>(n), kPickBlock, 0, s>>>(w, V, top_k, top_p, dev.at<SampleStream>(), tokens,
                                                              logp, l.errors->word(), launch);
  check_cuda(cudaGetLastError(), "sample_pick launch");
}

}  // namespace cuda
}  // namespace sppo
