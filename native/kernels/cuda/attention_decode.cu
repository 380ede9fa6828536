// CUDA paged-cache attention (kernels/attention_decode.h): kv_write scatters new rows into the
// pools; attention_decode runs one query row per sequence against the blocks its table names, with
// the per-element formulas of kernels/attention_math.h in fp32 on f32 or bf16 storage.
//
// attention_decode: a block takes one row r and up to kMaxGroup query heads of one kv head g (GQA:
// each key and value row is read from the pool once for all of them). A row's keys are cut into
// fixed chunks of kChunk = 256 keys and each chunk into tiles of KT keys staged in shared memory:
// scores of the tile (one thread per key and head), the tile's max and sum (one warp per head),
// then weighted values (one thread per output element). A tile is folded into its chunk, and the
// chunks into the row, in order, by fold() below. Two launch shapes compute exactly these folds:
//   walk:  one block per (row, head group) walks the row's chunks itself (enough rows to fill the
//          GPU: no scratch, one kernel);
//   split: one block per (row, head group, chunk) writes its chunk's (max, sum, values) to scratch
//          and combine_kernel folds the chunks in order (few rows with long contexts).
// Every value is produced by the same operations in the same order either way (explicit fused
// multiply-adds and rounded adds), so a row's output depends on its own keys only: not on the
// batch it is in, nor on the launch shape that batch picks.
//
// Bad input (a slot outside the pool, a length outside [1, table_stride * block_size], a negative
// table row, a table row past `tables`, a block-table entry outside the pool) is reported to the
// deferred error word and thrown at the next check with the CPU's message; the offending row (or
// key) is skipped, never read through. Indices are ordered as the CPU checks: the size of tables
// first, then per row its length, its table row, its blocks.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <vector>

#include "kernels/attention.h"
#include "kernels/attention_decode.h"
#include "kernels/attention_math.h"
#include "kernels/cuda/attention_tiles.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/host_helpers.h"

namespace sppo {
namespace cuda {
namespace {

namespace am = sppo::attention_math;
using attn::ld4;
using attn::load_rows;

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = kDecodeChunk;         // keys per chunk: the unit of the fold and of the split
constexpr int kMaxGroup = kDecodeHeadsPerBlock;  // query heads per block (more: several blocks per kv head)
// Keys per tile: 64 (two threads per key for the scores at up to 8 heads), 32 at head dim 256 to
// keep the tiles under 80 KB of shared memory. kChunk is a multiple of both.
// Blocks per SM the registers are budgeted for (__launch_bounds__): what the ~75 KB of shared
// memory per block allows (3 of 228 KB), 2 at head dim 256 (its 16 outputs per thread need more
// than 168 registers without spilling).
template <int HD>
struct DecodeTile {
  static constexpr int KT = HD <= 128 ? 64 : 32;
  static constexpr int kMinBlocks = HD <= 128 ? 3 : 2;
};

enum : unsigned { kErrSlot = 1, kErrTables = 2, kErrLength = 3, kErrRowNeg = 4, kErrBlock = 5 };

// The fold. A part is a softmax over some keys: its max m, its sum l of exp(s - m), and per output
// element its sum acc of exp(s - m) v. fold_stats folds part (mb, lb) into (m, l), the fold so far,
// rescaled to the larger max, and returns the factors the values fold with:
// acc = fold_values(acc, accb, ea, eb). An empty part (max -inf) leaves the fold as it is; a part
// folded into an empty fold is copied (its values times 1 plus the empty fold's zeros).
__device__ __forceinline__ void fold_stats(float& m, float& l, float mb, float lb, float& ea, float& eb) {
  if (mb == -INFINITY) {
    ea = 1.f;
    eb = 0.f;
    return;
  }
  if (m == -INFINITY) {
    m = mb;
    l = lb;
    ea = 0.f;
    eb = 1.f;
    return;
  }
  const float M = fmaxf(m, mb);
  ea = am::weight(m, M);
  eb = am::weight(mb, M);
  l = __fadd_rn(__fmul_rn(l, ea), __fmul_rn(lb, eb));
  m = M;
}
__device__ __forceinline__ float fold_values(float acc, float accb, float ea, float eb) {
  return __fadd_rn(__fmul_rn(acc, ea), __fmul_rn(accb, eb));
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_add(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

struct DecodeArgs {
  const int32_t* tables;
  int64_t tables_rows;  // rows `tables` holds (entries / table_stride); -1 when table_stride is 0
  const int32_t* table_rows;
  const int32_t* lengths;
  int nh, nkv, hd, group, hchunks, bs;
  int64_t num_blocks, stride, max_len;
  float scale;
  bool q_vec, kv_vec;
  int NC;             // chunks of the longest possible row (split: grid.z; the scratch's chunk axis)
  float* part_ml;     // split: [R][nh][NC][2] (max, sum) of each chunk
  float* part_acc;    // split: [R][nh][NC][hd] its weighted values
  unsigned long long* err;
  unsigned launch;
};

// Whether a row of that length and table row can be read (row_ok reports why not).
__device__ __forceinline__ bool row_readable(const DecodeArgs& a, int32_t len, int32_t tr) {
  return !(a.tables_rows >= 0 && tr >= a.tables_rows) && len >= 1 && len <= a.max_len && tr >= 0;
}

// Validates row r as the CPU does (reporting its failures; the lowest index wins) and says whether
// it can be read (row_readable).
__device__ __forceinline__ bool row_ok(const DecodeArgs& a, int64_t r, int32_t len, int32_t tr) {
  bool ok = true;
  if (a.tables_rows >= 0 && tr >= a.tables_rows) {
    if (threadIdx.x == 0) report(a.err, 0, a.launch, kErrTables);
    ok = false;
  }
  if (len < 1 || len > a.max_len) {
    if (threadIdx.x == 0) report(a.err, 1 + 3 * r, a.launch, kErrLength);
    ok = false;
  } else if (tr < 0) {
    if (threadIdx.x == 0) report(a.err, 2 + 3 * r, a.launch, kErrRowNeg);
    ok = false;
  }
  return ok;
}

template <int HD>
constexpr int decode_smem_floats() {
  constexpr int KT = DecodeTile<HD>::KT, LD = HD + 4;
  return kMaxGroup * LD + 2 * KT * LD + kMaxGroup * KT + 6 * kMaxGroup;
}

template <typename E, int HD, bool SPLIT>
__global__ void __launch_bounds__(kThreads, DecodeTile<HD>::kMinBlocks)
    decode_kernel(const typename E::raw* __restrict__ q, const typename E::raw* __restrict__ k_pool,
                  const typename E::raw* __restrict__ v_pool, typename E::raw* __restrict__ out, DecodeArgs a) {
  using raw = typename E::raw;
  constexpr int KT = DecodeTile<HD>::KT, LD = HD + 4;
  constexpr int TPK = kThreads / KT;               // threads per key in the scores
  constexpr int HPT = kMaxGroup / TPK;             // heads per thread in the scores
  constexpr int NOUT = kMaxGroup * HD / kThreads;  // output elements per thread
  constexpr int SPW = KT / 32;                     // scores per lane in the softmax
  extern __shared__ float4 smem4[];
  float* qs = reinterpret_cast<float*>(smem4);  // [kMaxGroup][LD]
  float* Ks = qs + kMaxGroup * LD;              // [KT][LD]
  float* Vs = Ks + KT * LD;                     // [KT][LD]
  float* Ss = Vs + KT * LD;                     // [kMaxGroup][KT] scores, then weights
  float* cm = Ss + kMaxGroup * KT;              // [kMaxGroup] the chunk's fold: max
  float* cl = cm + kMaxGroup;                   //   and sum
  float* rm = cl + kMaxGroup;                   // [kMaxGroup] the row's fold (walk)
  float* rl = rm + kMaxGroup;
  float* ea = rl + kMaxGroup;                   // [kMaxGroup] factors of the last fold_stats
  float* eb = ea + kMaxGroup;
  long long* slot = reinterpret_cast<long long*>(eb + kMaxGroup);  // [KT] pool row of each key, -1: none (8-byte
                                                                     // aligned: every array above is an even size)

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int64_t r = blockIdx.x;
  const int g = blockIdx.y / a.hchunks, hc = blockIdx.y % a.hchunks;
  const int h0 = g * a.group + hc * kMaxGroup, G = min(kMaxGroup, a.group - hc * kMaxGroup);
  const int32_t len = a.lengths[r], tr = a.table_rows[r];
  if (!row_ok(a, r, len, tr)) return;
  const int nchunks = (len + kChunk - 1) / kChunk;
  const int c_begin = SPLIT ? static_cast<int>(blockIdx.z) : 0, c_end = SPLIT ? c_begin + 1 : nchunks;
  if (c_begin >= nchunks) return;  // split: a chunk past this row's length
  const int32_t* tab = a.tables + int64_t(tr) * a.stride;
  const int64_t qw = int64_t(a.nh) * a.hd, kw = int64_t(a.nkv) * a.hd;

  load_rows<E, HD, kThreads>(qs, LD, kMaxGroup, a.hd, a.q_vec, [&](int hh) -> const raw* {
    return hh < G ? q + r * qw + int64_t(h0 + hh) * a.hd : nullptr;
  });
  if (tid < kMaxGroup) rm[tid] = -INFINITY, rl[tid] = 0.f;

  float racc[NOUT];  // the row's fold of this thread's output elements (walk)
#pragma unroll
  for (int i = 0; i < NOUT; ++i) racc[i] = 0.f;
  for (int c = c_begin; c < c_end; ++c) {
    float cacc[NOUT];  // the chunk's fold
#pragma unroll
    for (int i = 0; i < NOUT; ++i) cacc[i] = 0.f;
    if (tid < kMaxGroup) cm[tid] = -INFINITY, cl[tid] = 0.f;  // read after the tile's barriers
    const int c_last = min(len, (c + 1) * kChunk);
    for (int t0 = c * kChunk; t0 < c_last; t0 += KT) {
      __syncthreads();  // the previous tile is consumed (and qs is written, the first time)
      for (int i = tid; i < KT; i += kThreads) {
        const int j = t0 + i;
        long long sl = -1;
        if (j < len) {
          const int32_t blk = tab[j / a.bs];
          if (blk < 0 || blk >= a.num_blocks) report(a.err, 3 + 3 * r, a.launch, kErrBlock);
          else sl = static_cast<long long>(blk) * a.bs + j % a.bs;
        }
        slot[i] = sl;
      }
      __syncthreads();
      load_rows<E, HD, kThreads>(Ks, LD, KT, a.hd, a.kv_vec, [&](int i) -> const raw* {
        return slot[i] >= 0 ? k_pool + slot[i] * kw + int64_t(g) * a.hd : nullptr;
      });
      load_rows<E, HD, kThreads>(Vs, LD, KT, a.hd, a.kv_vec, [&](int i) -> const raw* {
        return slot[i] >= 0 ? v_pool + slot[i] * kw + int64_t(g) * a.hd : nullptr;
      });
      __syncthreads();
      {  // scores: key j of the tile, heads hg + TPK u
        const int j = tid % KT, hg = tid / KT;
        float dot[HPT];
#pragma unroll
        for (int u = 0; u < HPT; ++u) dot[u] = 0.f;
#pragma unroll 4
        for (int d = 0; d < HD; d += 4) {
          const float4 kv = ld4(Ks + j * LD + d);
#pragma unroll
          for (int u = 0; u < HPT; ++u) {
            const float4 qv = ld4(qs + (hg + TPK * u) * LD + d);
            float s = dot[u];
            s = fmaf(qv.x, kv.x, s);
            s = fmaf(qv.y, kv.y, s);
            s = fmaf(qv.z, kv.z, s);
            s = fmaf(qv.w, kv.w, s);
            dot[u] = s;
          }
        }
        const bool real = slot[j] >= 0;
#pragma unroll
        for (int u = 0; u < HPT; ++u) {
          const int hh = hg + TPK * u;
          if (hh < G) Ss[hh * KT + j] = real ? am::score(dot[u], a.scale) : -INFINITY;
        }
      }
      __syncthreads();
#pragma unroll
      for (int u = 0; u < kMaxGroup / kWarps; ++u) {  // the tile's max and sum, one warp per head
        const int hh = warp + kWarps * u;
        if (hh >= G) continue;
        float sv[SPW], mx = -INFINITY;
#pragma unroll
        for (int e = 0; e < SPW; ++e) {
          sv[e] = Ss[hh * KT + lane + 32 * e];
          mx = fmaxf(mx, sv[e]);
        }
        mx = warp_max(mx);
        float sum = 0.f;
#pragma unroll
        for (int e = 0; e < SPW; ++e) {
          const float p = sv[e] == -INFINITY ? 0.f : am::weight(sv[e], mx);
          Ss[hh * KT + lane + 32 * e] = p;
          sum = __fadd_rn(sum, p);
        }
        sum = warp_add(sum);
        if (lane == 0) fold_stats(cm[hh], cl[hh], mx, sum, ea[hh], eb[hh]);  // the tile into the chunk
      }
      __syncthreads();
#pragma unroll
      for (int i = 0; i < NOUT; ++i) {  // weighted values, folded into the chunk
        const int idx = tid + kThreads * i, hh = idx / HD, d = idx % HD;
        if (hh >= G) continue;
        const float* w = Ss + hh * KT;
        float acc = 0.f;
#pragma unroll 8
        for (int j = 0; j < KT; ++j) acc = fmaf(w[j], Vs[j * LD + d], acc);
        cacc[i] = fold_values(cacc[i], acc, ea[hh], eb[hh]);
      }
    }
    if constexpr (SPLIT) {  // the chunk to scratch (cm, cl are final since the last tile's barriers)
#pragma unroll
      for (int i = 0; i < NOUT; ++i) {
        const int idx = tid + kThreads * i, hh = idx / HD, d = idx % HD;
        if (hh >= G) continue;
        const int64_t at = (r * a.nh + h0 + hh) * a.NC + c;
        if (d < a.hd) a.part_acc[at * a.hd + d] = cacc[i];
        if (d == 0) {
          a.part_ml[2 * at] = cm[hh];
          a.part_ml[2 * at + 1] = cl[hh];
        }
      }
    } else {  // the chunk into the row
      __syncthreads();  // every thread has used this tile's ea/eb
      if (tid < G) fold_stats(rm[tid], rl[tid], cm[tid], cl[tid], ea[tid], eb[tid]);
      __syncthreads();
#pragma unroll
      for (int i = 0; i < NOUT; ++i) {
        const int hh = (tid + kThreads * i) / HD;
        if (hh < G) racc[i] = fold_values(racc[i], cacc[i], ea[hh], eb[hh]);
      }
    }
  }
  if constexpr (!SPLIT) {
#pragma unroll
    for (int i = 0; i < NOUT; ++i) {
      const int idx = tid + kThreads * i, hh = idx / HD, d = idx % HD;
      if (hh < G && d < a.hd) out[r * qw + int64_t(h0 + hh) * a.hd + d] = E::store(__fdiv_rn(racc[i], rl[hh]));
    }
  }
}

// The split's second pass: block (row, head) folds the row's chunks in order, one thread per
// output element, with the walk's fold_stats and fold_values. A row the first pass could not read
// (and reported) has no chunks written: its output is left as it was.
template <typename E>
__global__ void __launch_bounds__(kThreads) combine_kernel(const DecodeArgs a, typename E::raw* __restrict__ out) {
  const int64_t r = blockIdx.x;
  const int h = blockIdx.y, nh = a.nh, hd = a.hd, NC = a.NC;
  const int32_t len = a.lengths[r];
  if (!row_readable(a, len, a.table_rows[r])) return;
  const float* __restrict__ part_ml = a.part_ml;
  const float* __restrict__ part_acc = a.part_acc;
  const int nchunks = (len + kChunk - 1) / kChunk;
  const int64_t at0 = (r * nh + h) * NC;
  for (int d = threadIdx.x; d < hd; d += kThreads) {
    float m = -INFINITY, l = 0.f, acc = 0.f, ea, eb;
    for (int c = 0; c < nchunks; ++c) {
      fold_stats(m, l, part_ml[2 * (at0 + c)], part_ml[2 * (at0 + c) + 1], ea, eb);
      acc = fold_values(acc, part_acc[(at0 + c) * hd + d], ea, eb);
    }
    out[r * int64_t(nh) * hd + int64_t(h) * hd + d] = E::store(__fdiv_rn(acc, l));
  }
}

// kv_write: block-stride over rows; each row's bytes copied in units U (16 bytes when every row of
// both sides is 16-byte aligned, else one element).
template <typename U>
__global__ void __launch_bounds__(256)
    kv_write_kernel(const U* __restrict__ k, const U* __restrict__ v, const int32_t* __restrict__ slots, int64_t R,
                    int64_t units, int64_t pool_rows, U* __restrict__ k_pool, U* __restrict__ v_pool,
                    unsigned long long* err, unsigned launch) {
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
    const int32_t sl = slots[r];
    if (sl < 0 || sl >= pool_rows) {
      if (threadIdx.x == 0) report(err, r, launch, kErrSlot);
      continue;
    }
    const U* ks = k + r * units;
    const U* vs = v + r * units;
    U* kd = k_pool + int64_t(sl) * units;
    U* vd = v_pool + int64_t(sl) * units;
    for (int64_t e = threadIdx.x; e < units; e += blockDim.x) {
      kd[e] = ks[e];
      vd[e] = vs[e];
    }
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
int padded_head_dim(int64_t hd) { return hd <= 32 ? 32 : hd <= 64 ? 64 : hd <= 128 ? 128 : 256; }

template <int HD>
constexpr std::size_t decode_smem() {
  return sizeof(float) * decode_smem_floats<HD>() + sizeof(long long) * DecodeTile<HD>::KT;
}

template <typename E, int HD>
void launch_decode(const void* q, const void* k_pool, const void* v_pool, void* out, const DecodeArgs& a, int64_t R,
                   bool split, cudaStream_t st) {
  using raw = typename E::raw;
  constexpr std::size_t smem = decode_smem<HD>();
  const dim3 grid(static_cast<unsigned>(R), static_cast<unsigned>(a.nkv * a.hchunks),
                  split ? static_cast<unsigned>(a.NC) : 1u);
  const auto kernel = split ? decode_kernel<E, HD, true> : decode_kernel<E, HD, false>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
             "attention_decode: cudaFuncSetAttribute");
  kernel<<<grid, kThreads, smem, st>>>(static_cast<const raw*>(q), static_cast<const raw*>(k_pool),
                                       static_cast<const raw*>(v_pool), static_cast<raw*>(out), a);
  if (split)
    combine_kernel<E><<<dim3(static_cast<unsigned>(R), static_cast<unsigned>(a.nh)), kThreads, 0, st>>>(
        a, static_cast<raw*>(out));
}

template <typename E>
void decode_for(int64_t hd, const void* q, const void* k_pool, const void* v_pool, void* out, const DecodeArgs& a,
                int64_t R, bool split, cudaStream_t st) {
  switch (padded_head_dim(hd)) {
    case 32: return launch_decode<E, 32>(q, k_pool, v_pool, out, a, R, split, st);
    case 64: return launch_decode<E, 64>(q, k_pool, v_pool, out, a, R, split, st);
    case 128: return launch_decode<E, 128>(q, k_pool, v_pool, out, a, R, split, st);
    default: return launch_decode<E, 256>(q, k_pool, v_pool, out, a, R, split, st);
  }
}

void check_type(const char* op, DType dtype) {
  check_float_dtype(op, "tensors", dtype, false);
}

std::vector<int32_t> download_i32(const int32_t* dev, int64_t n) {
  std::vector<int32_t> v(static_cast<std::size_t>(n));
  if (n) check_cuda(cudaMemcpy(v.data(), dev, v.size() * sizeof(int32_t), cudaMemcpyDeviceToHost),
                    "fetch for an error message");
  return v;
}

}  // namespace

void kv_write(const void* k, const void* v, DType dtype, const int32_t* slots, int64_t R, int64_t kw,
              int64_t pool_rows, void* k_pool, void* v_pool, const Launch& l) {
  const char* op = "kv_write";
  check_type(op, dtype);
  SPPO_CHECK(R >= 0 && kw >= 0 && pool_rows >= 0, op, ": negative size (R = ", R, ", kw = ", kw,
             ", pool_rows = ", pool_rows, ")");
  if (R == 0) return;
  const unsigned launch = l.errors->expect([=](unsigned code, int64_t r) {
    if (code == kErrSlot)
      fail("kv_write: slots[", r, "] = ", fetch(slots, r), " is outside the cache pool of ", pool_rows, " rows");
    fail("CUDA kv_write kernel reported error code ", code, " at ", r);
  });
  const std::size_t row_bytes = static_cast<std::size_t>(kw) * dtype_size(dtype);
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(R, 1 << 16));
  cudaStream_t st = stream_of(l);
  if (row_bytes % 16 == 0 && aligned16(k) && aligned16(v) && aligned16(k_pool) && aligned16(v_pool)) {
    kv_write_kernel<uint4><<<grid, 256, 0, st>>>(static_cast<const uint4*>(k), static_cast<const uint4*>(v), slots, R,
                                                 static_cast<int64_t>(row_bytes / 16), pool_rows,
                                                 static_cast<uint4*>(k_pool), static_cast<uint4*>(v_pool),
                                                 l.errors->word(), launch);
  } else if (dtype == DType::F32) {
    kv_write_kernel<float><<<grid, 256, 0, st>>>(static_cast<const float*>(k), static_cast<const float*>(v), slots, R,
                                                 kw, pool_rows, static_cast<float*>(k_pool),
                                                 static_cast<float*>(v_pool), l.errors->word(), launch);
  } else {
    kv_write_kernel<uint16_t><<<grid, 256, 0, st>>>(static_cast<const uint16_t*>(k), static_cast<const uint16_t*>(v),
                                                    slots, R, kw, pool_rows, static_cast<uint16_t*>(k_pool),
                                                    static_cast<uint16_t*>(v_pool), l.errors->word(), launch);
  }
  check_cuda(cudaGetLastError(), "kv_write launch");
}

void attention_decode(const PagedShape& s, const void* q, const void* k_pool, const void* v_pool, DType dtype,
                      const int32_t* tables, int64_t tables_numel, const int32_t* table_rows,
                      const int32_t* lengths, void* out, const Launch& l) {
  const char* op = "attention_decode";
  check_type(op, dtype);
  // The CPU kernel's own checks (cpu/attention_decode.cpp), with its messages.
  SPPO_CHECK(s.block_size > 0 && s.block_size % 8 == 0,
             "attention_decode: block_size must be a positive multiple of 8 (got ", s.block_size, ")");
  SPPO_CHECK(s.nkv > 0 && s.nh % s.nkv == 0, "attention_decode: nh (", s.nh, ") must be a multiple of nkv (", s.nkv,
             ")");
  SPPO_CHECK(s.hd <= kMaxHeadDim, op, ": head_dim ", s.hd, " is above the CUDA kernels' limit of ", kMaxHeadDim);
  SPPO_CHECK(s.R >= 0 && s.R <= INT_MAX && s.hd >= 0 && s.table_stride >= 0 && s.num_blocks >= 0, op,
             ": bad shape (R ", s.R, ", head_dim ", s.hd, ", table_stride ", s.table_stride, ", num_blocks ",
             s.num_blocks, ")");
  // Positions, and a chunk past the last one, stay in int.
  SPPO_CHECK(s.block_size <= INT_MAX && s.table_stride * s.block_size <= INT_MAX - kChunk, op,
             ": table_stride * block_size must be below 2^31 - ", kChunk, " on CUDA");
  if (s.R == 0 || s.nh == 0) return;
  const int64_t group = s.nh / s.nkv, hchunks = (group + kMaxGroup - 1) / kMaxGroup;
  SPPO_CHECK(s.nkv * hchunks <= 65535, op, ": ", s.nkv, " kv heads are too many for the CUDA kernel");
  cudaStream_t st = stream_of(l);

  DecodeArgs a{};
  a.tables = tables;
  // A null `tables` holds no rows for the kernel (the explainer then gives the CPU's "is null").
  a.tables_rows = s.table_stride > 0 ? (tables != nullptr ? tables_numel / s.table_stride : 0) : -1;
  a.table_rows = table_rows;
  a.lengths = lengths;
  a.nh = static_cast<int>(s.nh);
  a.nkv = static_cast<int>(s.nkv);
  a.hd = static_cast<int>(s.hd);
  a.group = static_cast<int>(group);
  a.hchunks = static_cast<int>(hchunks);
  a.bs = static_cast<int>(s.block_size);
  a.num_blocks = s.num_blocks;
  a.stride = s.table_stride;
  a.max_len = s.table_stride * s.block_size;
  a.scale = static_cast<float>(s.scale);
  const int vec = static_cast<int>(16 / dtype_size(dtype));
  a.q_vec = s.hd % vec == 0 && aligned16(q);
  a.kv_vec = s.hd % vec == 0 && aligned16(k_pool) && aligned16(v_pool);
  a.NC = static_cast<int>(std::max<int64_t>(1, (a.max_len + kChunk - 1) / kChunk));

  // Split the keys over blocks only when the rows alone leave the GPU idle (fewer than
  // kDecodeSplitBelowPerSM blocks per SM) and the scratch stays small; the result is the same bits
  // either way. (combine_kernel's grid has a block row per query head: at most 65535.)
  int dev = 0, sms = 132;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    cudaGetLastError();
    sms = 132;
  }
  const int64_t walk_blocks = s.R * s.nkv * hchunks;
  const int64_t part_floats = s.R * s.nh * a.NC * (s.hd + 2);
  const bool split = a.NC > 1 && a.NC <= 65535 && s.nh <= 65535 && walk_blocks < kDecodeSplitBelowPerSM * int64_t(sms) &&
                     part_floats * int64_t(sizeof(float)) <= (int64_t(256) << 20);
  Scratch part(split ? static_cast<std::size_t>(part_floats) * sizeof(float) : 0, st);
  if (split) {
    a.part_ml = part.at<float>();
    a.part_acc = part.at<float>() + s.R * s.nh * a.NC * 2;
  }

  const int64_t R = s.R, stride = s.table_stride, bs = s.block_size, num_blocks = s.num_blocks;
  a.launch = l.errors->expect([=](unsigned code, int64_t index) {
    const int64_t r = (index - 1) / 3;
    switch (code) {
      case kErrTables: {
        // The CPU sizes tables by the largest table row (cpu_backend.cpp).
        int64_t rows = 0;
        for (int32_t tr : download_i32(table_rows, R)) rows = std::max<int64_t>(rows, int64_t{tr} + 1);
        if (tables_numel < rows * stride)
          fail("attention_decode: tables has ", tables_numel, " elements, needs ", rows * stride);
        fail("attention_decode: tables is null");
      }
      case kErrLength:
        fail("attention_decode: lengths[", r, "] = ", fetch(lengths, r), " is outside [1, ", stride * bs, "]");
      case kErrRowNeg:
        fail("attention_decode: table_rows[", r, "] = ", fetch(table_rows, r), " is negative");
      case kErrBlock: {
        const int64_t len = fetch(lengths, r), tr = fetch(table_rows, r);
        for (int64_t b = 0; b * bs < len; ++b) {
          const int32_t e = fetch(tables, tr * stride + b);
          if (e < 0 || e >= num_blocks)
            fail("attention_decode: block ", e, " of row ", r, " is outside the pool of ", num_blocks, " blocks");
        }
        break;
      }
      default: break;
    }
    fail("CUDA attention_decode kernel reported error code ", code, " at ", index);
  });
  a.err = l.errors->word();
  if (dtype == DType::F32) decode_for<F32E>(s.hd, q, k_pool, v_pool, out, a, s.R, split, st);
  else decode_for<BF16E>(s.hd, q, k_pool, v_pool, out, a, s.R, split, st);
  check_cuda(cudaGetLastError(), "attention_decode launch");
}

}  // namespace cuda
}  // namespace sppo
