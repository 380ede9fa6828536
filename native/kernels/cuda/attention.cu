// CUDA causal attention over a padded batch, forward and backward (kernels/attention.h), flash-style
// in fp32 on f32 or bf16 storage, with the per-element formulas of kernels/attention_math.h. No
// [T, T] matrix exists anywhere: scores live in registers and a per-warp staging tile.
//
//   forward:  one block per (query tile, head, sequence). Key tiles stream through shared memory
//             from key 0 to the tile's last row (causal); each warp keeps an online softmax (running
//             max m, per-lane partial sums l, unnormalised outputs o) for its rows. out = o / l and
//             lse = m + log l at the end; padding rows are written as zeros with lse 0.
//   backward: D = rowsum(dout * out) per (row, head) first; then two passes that never add into
//             the same element from two blocks (deterministic, no atomics):
//             dk/dv: one block per (key tile, kv head, sequence) walks the query heads of its group
//                    and the query tiles from its first key on: p = exp(score - lse),
//                    ds = p (dp - D) scale, dv += p^T dout, dk += ds^T q;
//             dq:    one block per (query tile, head, sequence) walks the key tiles up to its last
//                    row: dq += ds k.
// Keys with mask 0, and rows with mask 0, are zeroed when loaded and get weight 0, so they neither
// contribute nor receive anything (the CPU skips them): padded rows' dq and padded keys' dk/dv are 0.
//
// Tile sizes (sm_90: 228 KB shared memory and 64K registers per SM, 4 schedulers). Every block is
// 4 warps. A warp holds RL x 4 rows and CL x 8 columns of a product per tile (attention_tiles.cuh);
// per 4-wide step of a dot product it issues RL + CL shared loads (one wavefront each) for
// 4 RL CL fused multiply-adds per lane, so RL = 2, CL = 4 keeps the FMA pipes, not shared memory,
// the limit while registers stay near 100 and 3-4 blocks fit on an SM (12-16 warps to hide
// latency). Head dims 32 and 64 use wider tiles (RL = 4, CL = 8 or 4: more reuse per load, their
// accumulators are small); 256 narrows RL to keep the accumulators (RL x 32 floats per output
// tensor) in registers. Dynamic shared memory per block (forward_smem, dkdv_smem, dq_smem):
// forward 45.5 / 69.5 / 54.8 / 102.8 KB for HD 32 / 64 / 128 / 256, each backward pass 55 / 39.5 /
// 71.5 / 100.4 KB; registers and spills: scripts/ptxas-report.sh.
#include <climits>
#include <cstdint>

#include "kernels/attention.h"
#include "kernels/attention_math.h"
#include "kernels/cuda/attention_tiles.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/host_helpers.h"

namespace sppo {
namespace cuda {
namespace {

namespace am = sppo::attention_math;
using attn::accum_tile;
using attn::dot_tile;
using attn::load_rows;
using attn::stage;
using attn::zero4;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;

// Tile shapes per padded head dim: RL rows per lane (4 RL per warp, 16 RL per block), CL columns
// per lane (8 CL per tile).
template <int HD>
struct FwdTiles;
template <> struct FwdTiles<32> { static constexpr int RL = 4, CL = 8; };
template <> struct FwdTiles<64> { static constexpr int RL = 4, CL = 8; };
template <> struct FwdTiles<128> { static constexpr int RL = 2, CL = 4; };
template <> struct FwdTiles<256> { static constexpr int RL = 2, CL = 4; };
template <int HD>
struct BwdTiles;  // both backward passes: own rows (keys for dk/dv, queries for dq) x streamed columns
template <> struct BwdTiles<32> { static constexpr int RL = 4, CL = 8; };
template <> struct BwdTiles<64> { static constexpr int RL = 2, CL = 4; };
template <> struct BwdTiles<128> { static constexpr int RL = 2, CL = 4; };
template <> struct BwdTiles<256> { static constexpr int RL = 1, CL = 4; };

// Sizes of one configuration (all in floats unless named bytes).
template <int HD, int RL, int CL>
struct Geom {
  static constexpr int RW = 4 * RL;          // rows per warp
  static constexpr int ROWS = kWarps * RW;   // own rows per block
  static constexpr int COLS = 8 * CL;        // streamed rows per tile
  static constexpr int LD = HD + 4;          // tile row stride
  static constexpr int LDP = COLS + 8;       // staging row stride
  static constexpr int STAGE = kWarps * RW * LDP;
};

// ---- forward ------------------------------------------------------------------------------------

template <typename E, int HD, int RL, int CL>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const typename E::raw* __restrict__ q, const typename E::raw* __restrict__ k,
                   const typename E::raw* __restrict__ v, const uint8_t* __restrict__ mask,
                   typename E::raw* __restrict__ out, float* __restrict__ lse, int T, int nh, int nkv, int hd,
                   int group, float scale, bool q_vec, bool kv_vec) {
  using G = Geom<HD, RL, CL>;
  using raw = typename E::raw;
  constexpr int RW = G::RW, BM = G::ROWS, BN = G::COLS, LD = G::LD, LDP = G::LDP, NJ = HD / 32;
  extern __shared__ float4 smem4[];
  float* Qs = reinterpret_cast<float*>(smem4);  // [BM][LD]
  float* Ks = Qs + BM * LD;                     // [BN][LD]
  float* Vs = Ks + BN * LD;                     // [BN][LD]
  float* Ps = Vs + BN * LD;                     // [kWarps][RW][LDP]
  int* qm = reinterpret_cast<int*>(Ps + G::STAGE);  // [BM]
  int* km = qm + BM;                                // [BN]

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, ry = lane >> 3, cx = lane & 7;
  const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * BM, g = h / group;
  const int64_t qw = int64_t(nh) * hd, kw = int64_t(nkv) * hd, base = int64_t(b) * T;
  const uint8_t* mrow = mask + base;
  const int rows_here = min(BM, T - q0);

  int any = 0;
  for (int i = tid; i < BM; i += kThreads) {
    const int m = q0 + i < T && mrow[q0 + i] != 0;
    qm[i] = m;
    any |= m;
  }
  if (!__syncthreads_or(any)) {  // only padding rows: zeros, lse 0
    for (int e = tid; e < rows_here * hd; e += kThreads)
      out[(base + q0 + e / hd) * qw + int64_t(h) * hd + e % hd] = E::store(0.f);
    for (int r = tid; r < rows_here; r += kThreads) lse[(base + q0 + r) * nh + h] = 0.f;
    return;
  }
  load_rows<E, HD, kThreads>(Qs, LD, BM, hd, q_vec, [&](int r) -> const raw* {
    return qm[r] ? q + (base + q0 + r) * qw + int64_t(h) * hd : nullptr;
  });

  const int wr0 = warp * RW;               // the warp's first row in the tile
  const int warp_last = q0 + wr0 + RW - 1;  // its last query position
  float4 o[RL][NJ];
  float m[RL], l[RL];
#pragma unroll
  for (int kk = 0; kk < RL; ++kk) {
    m[kk] = -INFINITY;
    l[kk] = 0.f;
#pragma unroll
    for (int jj = 0; jj < NJ; ++jj) o[kk][jj] = zero4();
  }
  const int n_kt = (q0 + rows_here - 1) / BN + 1;
  for (int kt = 0; kt < n_kt; ++kt) {
    const int k0 = kt * BN;
    __syncthreads();  // the previous tile is consumed (and Qs is written, the first time)
    int anyk = 0;
    for (int i = tid; i < BN; i += kThreads) {
      const int mk = k0 + i < T && mrow[k0 + i] != 0;
      km[i] = mk;
      anyk |= mk;
    }
    if (!__syncthreads_or(anyk)) continue;  // a tile of padding keys (left padding)
    load_rows<E, HD, kThreads>(Ks, LD, BN, hd, kv_vec, [&](int r) -> const raw* {
      return km[r] ? k + (base + k0 + r) * kw + int64_t(g) * hd : nullptr;
    });
    load_rows<E, HD, kThreads>(Vs, LD, BN, hd, kv_vec, [&](int r) -> const raw* {
      return km[r] ? v + (base + k0 + r) * kw + int64_t(g) * hd : nullptr;
    });
    __syncthreads();
    if (k0 > warp_last) continue;  // every key of the tile is after every row of this warp

    float s[RL][CL];
    dot_tile<HD, RL, CL>(Qs + wr0 * LD, LD, Ks, LD, ry, cx, s);
#pragma unroll
    for (int kk = 0; kk < RL; ++kk) {
      const int t = q0 + wr0 + ry + 4 * kk;
      float mx = -INFINITY;
#pragma unroll
      for (int i = 0; i < CL; ++i) {
        const int c = cx + 8 * i;
        s[kk][i] = (km[c] && k0 + c <= t) ? am::score(s[kk][i], scale) : -INFINITY;
        mx = fmaxf(mx, s[kk][i]);
      }
      const float mn = fmaxf(m[kk], attn::group_max(mx));
      float alpha = 1.f, psum = 0.f;
      if (mn != -INFINITY) {
        alpha = am::weight(m[kk], mn);  // 0 while m is -inf
#pragma unroll
        for (int i = 0; i < CL; ++i) {
          s[kk][i] = s[kk][i] == -INFINITY ? 0.f : am::weight(s[kk][i], mn);
          psum += s[kk][i];
        }
      } else {
#pragma unroll
        for (int i = 0; i < CL; ++i) s[kk][i] = 0.f;
      }
      l[kk] = l[kk] * alpha + psum;
      m[kk] = mn;
#pragma unroll
      for (int jj = 0; jj < NJ; ++jj) {
        o[kk][jj].x *= alpha;
        o[kk][jj].y *= alpha;
        o[kk][jj].z *= alpha;
        o[kk][jj].w *= alpha;
      }
    }
    float* P = Ps + warp * RW * LDP;
    stage<RL, CL>(P, LDP, ry, cx, s);
    __syncwarp();
    accum_tile<HD, RL, BN>(P, LDP, Vs, LD, ry, cx, o);
    // The staging rows are rewritten only after the next tile's barriers.
  }

#pragma unroll
  for (int kk = 0; kk < RL; ++kk) {
    const int r = wr0 + ry + 4 * kk, t = q0 + r;
    const float lt = attn::group_sum(l[kk]);
    if (t >= T) continue;
    const bool real = qm[r] != 0;  // a real row has its own key: lt >= 1
    raw* orow = out + (base + t) * qw + int64_t(h) * hd;
#pragma unroll
    for (int jj = 0; jj < NJ; ++jj)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int d = cx * 4 + 32 * jj + e;
        if (d < hd) orow[d] = E::store(real ? __fdiv_rn(attn::get(o[kk][jj], e), lt) : 0.f);
      }
    if (cx == 0) lse[(base + t) * nh + h] = real ? am::lse(m[kk], lt) : 0.f;
  }
}

// ---- backward -----------------------------------------------------------------------------------

// D[row, h] = <dout, out> of that row and head (0 for padding rows): one warp each, lanes over the
// head dim, a fixed butterfly.
template <typename E>
__global__ void __launch_bounds__(256)
    dsum_kernel(const typename E::raw* __restrict__ dout, const typename E::raw* __restrict__ out,
                const uint8_t* __restrict__ mask, int64_t N, int nh, int hd, float* __restrict__ D) {
  const int lane = threadIdx.x & 31;
  const int64_t qw = int64_t(nh) * hd, total = N * nh;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t w = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); w < total; w += warps) {
    const int64_t row = w / nh;
    const int64_t off = row * qw + (w % nh) * hd;
    float acc = 0.f;
    if (mask[row])
      for (int d = lane; d < hd; d += 32) acc = fmaf(E::load(dout[off + d]), E::load(out[off + d]), acc);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc = __fadd_rn(acc, __shfl_xor_sync(0xffffffffu, acc, o));
    if (lane == 0) D[w] = acc;
  }
}

// Writes a warp's accumulated rows (RL per lane, at rows ry + 4k of its RW) into `dst` rows
// row0 + ..., those before `limit` only; columns past hd are dropped.
template <typename E, int HD, int RL>
__device__ __forceinline__ void write_rows(typename E::raw* dst, int64_t row_stride, int row0, int limit, int hd,
                                           int ry, int cx, const float4 (&acc)[RL][HD / 32]) {
#pragma unroll
  for (int kk = 0; kk < RL; ++kk) {
    const int r = row0 + ry + 4 * kk;
    if (r >= limit) continue;
    typename E::raw* p = dst + int64_t(r) * row_stride;
#pragma unroll
    for (int jj = 0; jj < HD / 32; ++jj)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int d = cx * 4 + 32 * jj + e;
        if (d < hd) p[d] = E::store(attn::get(acc[kk][jj], e));
      }
  }
}

template <typename E, int HD, int RL, int CL>
__global__ void __launch_bounds__(kThreads)
    dkdv_kernel(const typename E::raw* __restrict__ q, const typename E::raw* __restrict__ k,
                const typename E::raw* __restrict__ v, const uint8_t* __restrict__ mask,
                const float* __restrict__ lse, const float* __restrict__ D, const typename E::raw* __restrict__ dout,
                typename E::raw* __restrict__ dk, typename E::raw* __restrict__ dv, int T, int nh, int nkv, int hd,
                int group, float scale, bool qd_vec, bool kv_vec) {
  using G = Geom<HD, RL, CL>;
  using raw = typename E::raw;
  constexpr int RW = G::RW, BK = G::ROWS, BQ = G::COLS, LD = G::LD, LDP = G::LDP, NJ = HD / 32;
  extern __shared__ float4 smem4[];
  float* Ko = reinterpret_cast<float*>(smem4);  // [BK][LD] the block's keys
  float* Vo = Ko + BK * LD;                     // [BK][LD] and values
  float* Qs = Vo + BK * LD;                     // [BQ][LD] a query tile
  float* dOs = Qs + BQ * LD;                    // [BQ][LD] its output gradients
  float* St = dOs + BQ * LD;                    // [kWarps][RW][LDP]
  float* ls = St + G::STAGE;                    // [BQ] lse
  float* Ds = ls + BQ;                          // [BQ] D
  int* qm = reinterpret_cast<int*>(Ds + BQ);    // [BQ]
  int* km = qm + BQ;                            // [BK]

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, ry = lane >> 3, cx = lane & 7;
  const int b = blockIdx.z, g = blockIdx.y, k0 = blockIdx.x * BK;
  const int64_t qw = int64_t(nh) * hd, kw = int64_t(nkv) * hd, base = int64_t(b) * T;
  const uint8_t* mrow = mask + base;
  const int rows_here = min(BK, T - k0);

  int any = 0;
  for (int i = tid; i < BK; i += kThreads) {
    const int m = k0 + i < T && mrow[k0 + i] != 0;
    km[i] = m;
    any |= m;
  }
  if (!__syncthreads_or(any)) {  // only padding keys: they receive nothing
    for (int e = tid; e < rows_here * hd; e += kThreads) {
      const int64_t at = (base + k0 + e / hd) * kw + int64_t(g) * hd + e % hd;
      dk[at] = E::store(0.f);
      dv[at] = E::store(0.f);
    }
    return;
  }
  load_rows<E, HD, kThreads>(Ko, LD, BK, hd, kv_vec, [&](int r) -> const raw* {
    return km[r] ? k + (base + k0 + r) * kw + int64_t(g) * hd : nullptr;
  });
  load_rows<E, HD, kThreads>(Vo, LD, BK, hd, kv_vec, [&](int r) -> const raw* {
    return km[r] ? v + (base + k0 + r) * kw + int64_t(g) * hd : nullptr;
  });

  const int wk0 = warp * RW;             // the warp's first key row in the tile
  const int warp_first = k0 + wk0;       // its first key position
  float4 dK[RL][NJ], dV[RL][NJ];
#pragma unroll
  for (int kk = 0; kk < RL; ++kk)
#pragma unroll
    for (int jj = 0; jj < NJ; ++jj) dK[kk][jj] = dV[kk][jj] = zero4();
  float* S = St + warp * RW * LDP;
  const int n_qt = (T + BQ - 1) / BQ;
  for (int hh = 0; hh < group; ++hh) {
    const int h = g * group + hh;
    for (int qt = k0 / BQ; qt < n_qt; ++qt) {
      const int q0 = qt * BQ;
      __syncthreads();  // the previous query tile is consumed (and Ko/Vo are written, the first time)
      int anyq = 0;
      for (int i = tid; i < BQ; i += kThreads) {
        const int m = q0 + i < T && mrow[q0 + i] != 0;
        qm[i] = m;
        anyq |= m;
        ls[i] = m ? lse[(base + q0 + i) * nh + h] : 0.f;
        Ds[i] = m ? D[(base + q0 + i) * nh + h] : 0.f;
      }
      if (!__syncthreads_or(anyq)) continue;
      load_rows<E, HD, kThreads>(Qs, LD, BQ, hd, qd_vec, [&](int r) -> const raw* {
        return qm[r] ? q + (base + q0 + r) * qw + int64_t(h) * hd : nullptr;
      });
      load_rows<E, HD, kThreads>(dOs, LD, BQ, hd, qd_vec, [&](int r) -> const raw* {
        return qm[r] ? dout + (base + q0 + r) * qw + int64_t(h) * hd : nullptr;
      });
      __syncthreads();
      if (warp_first > q0 + BQ - 1) continue;  // every query of the tile is before this warp's keys

      float s[RL][CL], dp[RL][CL];
      dot_tile<HD, RL, CL>(Ko + wk0 * LD, LD, Qs, LD, ry, cx, s);    // s[key][query] = <k, q>
      dot_tile<HD, RL, CL>(Vo + wk0 * LD, LD, dOs, LD, ry, cx, dp);  // dp[key][query] = <v, dout>
#pragma unroll
      for (int kk = 0; kk < RL; ++kk) {
        const int kr = wk0 + ry + 4 * kk, j = k0 + kr;
#pragma unroll
        for (int i = 0; i < CL; ++i) {
          const int c = cx + 8 * i;
          const bool vis = km[kr] && qm[c] && j <= q0 + c;
          const float p = vis ? am::prob(s[kk][i], scale, ls[c]) : 0.f;
          dp[kk][i] = vis ? am::dscore(p, dp[kk][i], Ds[c], scale) : 0.f;
          s[kk][i] = p;
        }
      }
      stage<RL, CL>(S, LDP, ry, cx, s);
      __syncwarp();
      accum_tile<HD, RL, BQ>(S, LDP, dOs, LD, ry, cx, dV);  // dv += p^T dout
      __syncwarp();
      stage<RL, CL>(S, LDP, ry, cx, dp);
      __syncwarp();
      accum_tile<HD, RL, BQ>(S, LDP, Qs, LD, ry, cx, dK);  // dk += ds^T q
    }
  }
  raw* dk0 = dk + (base + k0) * kw + int64_t(g) * hd;
  raw* dv0 = dv + (base + k0) * kw + int64_t(g) * hd;
  write_rows<E, HD, RL>(dk0, kw, wk0, rows_here, hd, ry, cx, dK);
  write_rows<E, HD, RL>(dv0, kw, wk0, rows_here, hd, ry, cx, dV);
}

template <typename E, int HD, int RL, int CL>
__global__ void __launch_bounds__(kThreads)
    dq_kernel(const typename E::raw* __restrict__ q, const typename E::raw* __restrict__ k,
              const typename E::raw* __restrict__ v, const uint8_t* __restrict__ mask, const float* __restrict__ lse,
              const float* __restrict__ D, const typename E::raw* __restrict__ dout, typename E::raw* __restrict__ dq,
              int T, int nh, int nkv, int hd, int group, float scale, bool qd_vec, bool kv_vec) {
  using G = Geom<HD, RL, CL>;
  using raw = typename E::raw;
  constexpr int RW = G::RW, BM = G::ROWS, BN = G::COLS, LD = G::LD, LDP = G::LDP, NJ = HD / 32;
  extern __shared__ float4 smem4[];
  float* Qo = reinterpret_cast<float*>(smem4);  // [BM][LD] the block's queries
  float* dOo = Qo + BM * LD;                    // [BM][LD] and their output gradients
  float* Ks = dOo + BM * LD;                    // [BN][LD] a key tile
  float* Vs = Ks + BN * LD;                     // [BN][LD]
  float* St = Vs + BN * LD;                     // [kWarps][RW][LDP]
  float* ls = St + G::STAGE;                    // [BM]
  float* Ds = ls + BM;                          // [BM]
  int* qm = reinterpret_cast<int*>(Ds + BM);    // [BM]
  int* km = qm + BM;                            // [BN]

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, ry = lane >> 3, cx = lane & 7;
  const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * BM, g = h / group;
  const int64_t qw = int64_t(nh) * hd, kw = int64_t(nkv) * hd, base = int64_t(b) * T;
  const uint8_t* mrow = mask + base;
  const int rows_here = min(BM, T - q0);

  int any = 0;
  for (int i = tid; i < BM; i += kThreads) {
    const int m = q0 + i < T && mrow[q0 + i] != 0;
    qm[i] = m;
    any |= m;
    ls[i] = m ? lse[(base + q0 + i) * nh + h] : 0.f;
    Ds[i] = m ? D[(base + q0 + i) * nh + h] : 0.f;
  }
  if (!__syncthreads_or(any)) {  // only padding rows
    for (int e = tid; e < rows_here * hd; e += kThreads)
      dq[(base + q0 + e / hd) * qw + int64_t(h) * hd + e % hd] = E::store(0.f);
    return;
  }
  load_rows<E, HD, kThreads>(Qo, LD, BM, hd, qd_vec, [&](int r) -> const raw* {
    return qm[r] ? q + (base + q0 + r) * qw + int64_t(h) * hd : nullptr;
  });
  load_rows<E, HD, kThreads>(dOo, LD, BM, hd, qd_vec, [&](int r) -> const raw* {
    return qm[r] ? dout + (base + q0 + r) * qw + int64_t(h) * hd : nullptr;
  });

  const int wr0 = warp * RW, warp_last = q0 + wr0 + RW - 1;
  float4 dQ[RL][NJ];
#pragma unroll
  for (int kk = 0; kk < RL; ++kk)
#pragma unroll
    for (int jj = 0; jj < NJ; ++jj) dQ[kk][jj] = zero4();
  float* S = St + warp * RW * LDP;
  const int n_kt = (q0 + rows_here - 1) / BN + 1;
  for (int kt = 0; kt < n_kt; ++kt) {
    const int k0 = kt * BN;
    __syncthreads();  // the previous key tile is consumed (and the own tiles are written, the first time)
    int anyk = 0;
    for (int i = tid; i < BN; i += kThreads) {
      const int mk = k0 + i < T && mrow[k0 + i] != 0;
      km[i] = mk;
      anyk |= mk;
    }
    if (!__syncthreads_or(anyk)) continue;
    load_rows<E, HD, kThreads>(Ks, LD, BN, hd, kv_vec, [&](int r) -> const raw* {
      return km[r] ? k + (base + k0 + r) * kw + int64_t(g) * hd : nullptr;
    });
    load_rows<E, HD, kThreads>(Vs, LD, BN, hd, kv_vec, [&](int r) -> const raw* {
      return km[r] ? v + (base + k0 + r) * kw + int64_t(g) * hd : nullptr;
    });
    __syncthreads();
    if (k0 > warp_last) continue;

    float s[RL][CL], dp[RL][CL];
    dot_tile<HD, RL, CL>(Qo + wr0 * LD, LD, Ks, LD, ry, cx, s);    // s[query][key] = <q, k>
    dot_tile<HD, RL, CL>(dOo + wr0 * LD, LD, Vs, LD, ry, cx, dp);  // dp[query][key] = <dout, v>
#pragma unroll
    for (int kk = 0; kk < RL; ++kk) {
      const int r = wr0 + ry + 4 * kk, t = q0 + r;
#pragma unroll
      for (int i = 0; i < CL; ++i) {
        const int c = cx + 8 * i;
        const bool vis = qm[r] && km[c] && k0 + c <= t;
        const float p = vis ? am::prob(s[kk][i], scale, ls[r]) : 0.f;
        dp[kk][i] = vis ? am::dscore(p, dp[kk][i], Ds[r], scale) : 0.f;
      }
    }
    stage<RL, CL>(S, LDP, ry, cx, dp);
    __syncwarp();
    accum_tile<HD, RL, BN>(S, LDP, Ks, LD, ry, cx, dQ);  // dq += ds k
  }
  write_rows<E, HD, RL>(dq + (base + q0) * qw + int64_t(h) * hd, qw, wr0, rows_here, hd, ry, cx, dQ);
}

// ---- launchers ----------------------------------------------------------------------------------

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Head dims are padded to one of the compiled tile widths.
int padded_head_dim(int64_t hd) { return hd <= 32 ? 32 : hd <= 64 ? 64 : hd <= 128 ? 128 : 256; }

void check_shape(const AttnShape& s, DType dtype, const char* op) {
  check_float_dtype(op, "tensors", dtype, false);
  SPPO_CHECK(s.B >= 0 && s.T >= 0 && s.hd > 0 && s.nkv > 0 && s.nh % s.nkv == 0, op, ": bad shape (B ", s.B, ", T ",
             s.T, ", heads ", s.nh, "/", s.nkv, ", head_dim ", s.hd, ")");
  SPPO_CHECK(s.hd <= kMaxHeadDim, op, ": head_dim ", s.hd, " is above the CUDA kernels' limit of ", kMaxHeadDim);
  SPPO_CHECK(s.B <= 65535 && s.nh <= 65535, op, ": B (", s.B, ") and the head count (", s.nh,
             ") must be at most 65535 on CUDA");
  SPPO_CHECK(s.T < INT_MAX / 2, op, ": T = ", s.T, " is too long for the CUDA kernels");
}

template <typename Kernel>
void allow_smem(Kernel kernel, std::size_t bytes, const char* op) {
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)), op);
}

template <int HD, int RL, int CL>
constexpr std::size_t forward_smem() {
  using G = Geom<HD, RL, CL>;
  return sizeof(float) * (G::ROWS * G::LD + 2 * G::COLS * G::LD + G::STAGE) + sizeof(int) * (G::ROWS + G::COLS);
}
template <int HD, int RL, int CL>
constexpr std::size_t dkdv_smem() {
  using G = Geom<HD, RL, CL>;
  return sizeof(float) * (2 * G::ROWS * G::LD + 2 * G::COLS * G::LD + G::STAGE + 2 * G::COLS) +
         sizeof(int) * (G::COLS + G::ROWS);
}
template <int HD, int RL, int CL>
constexpr std::size_t dq_smem() {
  using G = Geom<HD, RL, CL>;
  return sizeof(float) * (2 * G::ROWS * G::LD + 2 * G::COLS * G::LD + G::STAGE + 2 * G::ROWS) +
         sizeof(int) * (G::ROWS + G::COLS);
}

template <typename E, int HD>
void launch_forward(const AttnShape& s, const void* q, const void* k, const void* v, const uint8_t* mask, void* out,
                    float* lse, cudaStream_t st) {
  using raw = typename E::raw;
  constexpr int RL = FwdTiles<HD>::RL, CL = FwdTiles<HD>::CL;
  constexpr std::size_t smem = forward_smem<HD, RL, CL>();
  const auto kernel = forward_kernel<E, HD, RL, CL>;
  allow_smem(kernel, smem, "attention_forward: cudaFuncSetAttribute");
  const int64_t tiles = (s.T + Geom<HD, RL, CL>::ROWS - 1) / Geom<HD, RL, CL>::ROWS;
  const bool q_vec = s.hd % kVec<E> == 0 && aligned16(q);
  const bool kv_vec = s.hd % kVec<E> == 0 && aligned16(k) && aligned16(v);
  kernel<<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(s.nh), static_cast<unsigned>(s.B)), kThreads,
           smem, st>>>(static_cast<const raw*>(q), static_cast<const raw*>(k), static_cast<const raw*>(v), mask,
                       static_cast<raw*>(out), lse, static_cast<int>(s.T), static_cast<int>(s.nh),
                       static_cast<int>(s.nkv), static_cast<int>(s.hd), static_cast<int>(s.nh / s.nkv),
                       static_cast<float>(s.scale), q_vec, kv_vec);
}

template <typename E, int HD>
void launch_backward(const AttnShape& s, const void* q, const void* k, const void* v, const uint8_t* mask,
                     const float* lse, const float* D, const void* dout, void* dq, void* dk, void* dv,
                     cudaStream_t st) {
  using raw = typename E::raw;
  constexpr int RL = BwdTiles<HD>::RL, CL = BwdTiles<HD>::CL;
  using G = Geom<HD, RL, CL>;
  const bool qd_vec = s.hd % kVec<E> == 0 && aligned16(q) && aligned16(dout);
  const bool kv_vec = s.hd % kVec<E> == 0 && aligned16(k) && aligned16(v);
  const int T = static_cast<int>(s.T), nh = static_cast<int>(s.nh), nkv = static_cast<int>(s.nkv);
  const int hd = static_cast<int>(s.hd), group = static_cast<int>(s.nh / s.nkv);
  const float scale = static_cast<float>(s.scale);
  const unsigned tiles = static_cast<unsigned>((s.T + G::ROWS - 1) / G::ROWS);
  {
    constexpr std::size_t smem = dkdv_smem<HD, RL, CL>();
    const auto kernel = dkdv_kernel<E, HD, RL, CL>;
    allow_smem(kernel, smem, "attention_backward: cudaFuncSetAttribute");
    kernel<<<dim3(tiles, static_cast<unsigned>(s.nkv), static_cast<unsigned>(s.B)), kThreads, smem, st>>>(
        static_cast<const raw*>(q), static_cast<const raw*>(k), static_cast<const raw*>(v), mask, lse, D,
        static_cast<const raw*>(dout), static_cast<raw*>(dk), static_cast<raw*>(dv), T, nh, nkv, hd, group, scale,
        qd_vec, kv_vec);
  }
  {
    constexpr std::size_t smem = dq_smem<HD, RL, CL>();
    const auto kernel = dq_kernel<E, HD, RL, CL>;
    allow_smem(kernel, smem, "attention_backward: cudaFuncSetAttribute");
    kernel<<<dim3(tiles, static_cast<unsigned>(s.nh), static_cast<unsigned>(s.B)), kThreads, smem, st>>>(
        static_cast<const raw*>(q), static_cast<const raw*>(k), static_cast<const raw*>(v), mask, lse, D,
        static_cast<const raw*>(dout), static_cast<raw*>(dq), T, nh, nkv, hd, group, scale, qd_vec, kv_vec);
  }
}

template <typename E>
void forward_for(const AttnShape& s, const void* q, const void* k, const void* v, const uint8_t* mask, void* out,
                 float* lse, cudaStream_t st) {
  switch (padded_head_dim(s.hd)) {
    case 32: return launch_forward<E, 32>(s, q, k, v, mask, out, lse, st);
    case 64: return launch_forward<E, 64>(s, q, k, v, mask, out, lse, st);
    case 128: return launch_forward<E, 128>(s, q, k, v, mask, out, lse, st);
    default: return launch_forward<E, 256>(s, q, k, v, mask, out, lse, st);
  }
}

template <typename E>
void backward_for(const AttnShape& s, const void* q, const void* k, const void* v, const uint8_t* mask,
                  const float* lse, const float* D, const void* dout, void* dq, void* dk, void* dv, cudaStream_t st) {
  switch (padded_head_dim(s.hd)) {
    case 32: return launch_backward<E, 32>(s, q, k, v, mask, lse, D, dout, dq, dk, dv, st);
    case 64: return launch_backward<E, 64>(s, q, k, v, mask, lse, D, dout, dq, dk, dv, st);
    case 128: return launch_backward<E, 128>(s, q, k, v, mask, lse, D, dout, dq, dk, dv, st);
    default: return launch_backward<E, 256>(s, q, k, v, mask, lse, D, dout, dq, dk, dv, st);
  }
}

}  // namespace

void attention_forward(const AttnShape& s, const void* q, const void* k, const void* v, DType dtype,
                       const uint8_t* mask, void* out, float* lse, const Launch& l) {
  const char* op = "attention_forward";
  check_shape(s, dtype, op);
  if (s.B * s.T == 0 || s.nh == 0) return;
  if (dtype == DType::F32) forward_for<F32E>(s, q, k, v, mask, out, lse, stream_of(l));
  else forward_for<BF16E>(s, q, k, v, mask, out, lse, stream_of(l));
  check_cuda(cudaGetLastError(), "attention_forward launch");
}

void attention_backward(const AttnShape& s, const void* q, const void* k, const void* v, DType dtype,
                        const uint8_t* mask, const void* out, const float* lse, const void* dout, void* dq, void* dk,
                        void* dv, const Launch& l) {
  const char* op = "attention_backward";
  check_shape(s, dtype, op);
  if (s.B * s.T == 0 || s.nh == 0) return;
  cudaStream_t st = stream_of(l);
  const int64_t N = s.B * s.T;
  Scratch D(static_cast<std::size_t>(N * s.nh) * sizeof(float), st);
  const unsigned grid = grid_for(N * s.nh, 256 / 32);
  if (dtype == DType::F32) {
    dsum_kernel<F32E><<<grid, 256, 0, st>>>(static_cast<const float*>(dout), static_cast<const float*>(out), mask, N,
                                            static_cast<int>(s.nh), static_cast<int>(s.hd), D.at<float>());
    backward_for<F32E>(s, q, k, v, mask, lse, D.at<float>(), dout, dq, dk, dv, st);
  } else {
    dsum_kernel<BF16E><<<grid, 256, 0, st>>>(static_cast<const uint16_t*>(dout), static_cast<const uint16_t*>(out),
                                             mask, N, static_cast<int>(s.nh), static_cast<int>(s.hd), D.at<float>());
    backward_for<BF16E>(s, q, k, v, mask, lse, D.at<float>(), dout, dq, dk, dv, st);
  }
  check_cuda(cudaGetLastError(), "attention_backward launch");
}

}  // namespace cuda
}  // namespace sppo
