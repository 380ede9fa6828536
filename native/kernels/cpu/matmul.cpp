// CPU matrix product (kernels/matmul.h): a packed, blocked GEMM in the BLIS shape. B is packed in
// kc x nc blocks of nr-wide micro-panels and A in mc x kc blocks of mr-tall micro-panels (zero
// padded at the edges, so every micro-tile is full); a register-blocked micro-kernel accumulates
// an mr x nr tile with one FMA chain per element over the kc block, then adds it to C.
// Micro-kernels: AVX-512 (12 x 32), AVX2+FMA (6 x 16), portable (4 x 8, no FMA). The first two
// run the same per-element chains, so they agree bit for bit (see the contract).
// Threads (OpenMP) share the packed blocks and split the nr-panels, so each C element is computed
// by one thread in the fixed order: results do not depend on the thread count.
#include "kernels/matmul.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "core/simd.h"
#include "core/simd_avx2.h"

#if SPPO_HAVE_AVX2_PATH
#include <immintrin.h>
#endif

namespace sppo::cpu {
namespace {

constexpr int64_t kKc = kMatmulKc;
constexpr int64_t kMc = 384;   // rows of A per packed block (L2)
constexpr int64_t kNc = 4096;  // columns of B per packed block (L3)

enum class Kernel { Portable, Avx2, Avx512 };

bool cpu_has_avx512() {
#if SPPO_HAVE_AVX2_PATH
  static const bool on = [] {
    // SPPO_SIMD=avx2 keeps to the AVX2 kernels (to compare them with the AVX-512 ones).
    const char* env = std::getenv("SPPO_SIMD");
    if (env && std::strcmp(env, "avx2") == 0) return false;
    __builtin_cpu_init();
    return simd::use_avx2() && __builtin_cpu_supports("avx512f");
  }();
  return on;
#else
  return false;
#endif
}

template <typename T>
Kernel kernel_for() {
  if constexpr (std::is_same_v<T, float>) {
    if (cpu_has_avx512()) return Kernel::Avx512;
    if (simd::use_avx2()) return Kernel::Avx2;
  }
  return Kernel::Portable;
}

struct Tile {
  int64_t mr, nr;
};
Tile tile_of(Kernel k) {
  switch (k) {
    case Kernel::Avx512: return {12, 32};
    case Kernel::Avx2: return {6, 16};
    case Kernel::Portable: return {4, 8};
  }
  return {4, 8};
}

// ---- packing -------------------------------------------------------------------------------------
// A(i, k) of op(A) and B(k, j) of op(B).
template <typename T>
struct Operands {
  const T* A;
  const T* B;
  int64_t M, N, K;
  bool ta, tb;
  T a(int64_t i, int64_t k) const { return ta ? A[k * M + i] : A[i * K + k]; }
  T b(int64_t k, int64_t j) const { return tb ? B[j * K + k] : B[k * N + j]; }
};

// One mr-tall micro-panel of A: rows [i0, i0 + mr), k in [p0, p0 + kc), k-major, zero padded.
template <typename T>
void pack_a_panel(const Operands<T>& o, int64_t i0, int64_t mr, int64_t p0, int64_t kc, T* dst) {
  const int64_t rows = std::min(mr, o.M - i0);
  if (!o.ta) {
    for (int64_t k = 0; k < kc; ++k) {
      T* d = dst + k * mr;
      for (int64_t r = 0; r < rows; ++r) d[r] = o.A[(i0 + r) * o.K + p0 + k];
      for (int64_t r = rows; r < mr; ++r) d[r] = T(0);
    }
  } else {  // A stored [K, M]: rows of one k are contiguous
    for (int64_t k = 0; k < kc; ++k) {
      T* d = dst + k * mr;
      const T* s = o.A + (p0 + k) * o.M + i0;
      std::memcpy(d, s, static_cast<size_t>(rows) * sizeof(T));
      for (int64_t r = rows; r < mr; ++r) d[r] = T(0);
    }
  }
}

// One nr-wide micro-panel of B: columns [j0, j0 + nr), k in [p0, p0 + kc), k-major, zero padded.
template <typename T>
void pack_b_panel(const Operands<T>& o, int64_t j0, int64_t nr, int64_t p0, int64_t kc, T* dst) {
  const int64_t cols = std::min(nr, o.N - j0);
  if (!o.tb) {  // B stored [K, N]: columns of one k are contiguous
    for (int64_t k = 0; k < kc; ++k) {
      T* d = dst + k * nr;
      std::memcpy(d, o.B + (p0 + k) * o.N + j0, static_cast<size_t>(cols) * sizeof(T));
      for (int64_t c = cols; c < nr; ++c) d[c] = T(0);
    }
  } else {  // B stored [N, K]: read each column's k run once, write strided
    for (int64_t c = 0; c < cols; ++c) {
      const T* s = o.B + (j0 + c) * o.K + p0;
      for (int64_t k = 0; k < kc; ++k) dst[k * nr + c] = s[k];
    }
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t c = cols; c < nr; ++c) dst[k * nr + c] = T(0);
  }
}

// ---- micro-kernels -------------------------------------------------------------------------------
// acc[MR][NR] = sum_k a[k][i] * b[k][j] (one chain per element), then C = acc (store) or
// C += acc, for the valid rows x cols of the tile.
template <typename T, int MR, int NR>
void micro_portable(int64_t kc, const T* a, const T* b, T* C, int64_t ldc, bool store, int64_t rows, int64_t cols) {
  T acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const T* ak = a + k * MR;
    const T* bk = b + k * NR;
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += ak[i] * bk[j];
  }
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      T& c = C[i * ldc + j];
      c = store ? acc[i][j] : c + acc[i][j];
    }
}

#if SPPO_HAVE_AVX2_PATH
SPPO_TARGET_AVX2 void micro_avx2(int64_t kc, const float* a, const float* b, float* C, int64_t ldc, bool store,
                                 int64_t rows, int64_t cols) {
  constexpr int MR = 6;
  __m256 c[MR][2];
  for (int i = 0; i < MR; ++i) c[i][0] = c[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b + k * 16), b1 = _mm256_loadu_ps(b + k * 16 + 8);
    const float* ak = a + k * MR;
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(ak + i);
      c[i][0] = _mm256_fmadd_ps(ai, b0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(ai, b1, c[i][1]);
    }
  }
  if (rows == MR && cols == 16) {
    for (int i = 0; i < MR; ++i) {
      float* ci = C + i * ldc;
      if (store) {
        _mm256_storeu_ps(ci, c[i][0]);
        _mm256_storeu_ps(ci + 8, c[i][1]);
      } else {
        _mm256_storeu_ps(ci, _mm256_add_ps(_mm256_loadu_ps(ci), c[i][0]));
        _mm256_storeu_ps(ci + 8, _mm256_add_ps(_mm256_loadu_ps(ci + 8), c[i][1]));
      }
    }
    return;
  }
  alignas(32) float t[MR][16];
  for (int i = 0; i < MR; ++i) {
    _mm256_store_ps(t[i], c[i][0]);
    _mm256_store_ps(t[i] + 8, c[i][1]);
  }
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      float& ci = C[i * ldc + j];
      ci = store ? t[i][j] : ci + t[i][j];
    }
}

__attribute__((target("avx512f"))) void micro_avx512(int64_t kc, const float* a, const float* b, float* C,
                                                     int64_t ldc, bool store, int64_t rows, int64_t cols) {
  constexpr int MR = 12;
  __m512 c[MR][2];
  for (int i = 0; i < MR; ++i) c[i][0] = c[i][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b + k * 32), b1 = _mm512_loadu_ps(b + k * 32 + 16);
    const float* ak = a + k * MR;
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(ak[i]);
      c[i][0] = _mm512_fmadd_ps(ai, b0, c[i][0]);
      c[i][1] = _mm512_fmadd_ps(ai, b1, c[i][1]);
    }
  }
  if (rows == MR && cols == 32) {
    for (int i = 0; i < MR; ++i) {
      float* ci = C + i * ldc;
      if (store) {
        _mm512_storeu_ps(ci, c[i][0]);
        _mm512_storeu_ps(ci + 16, c[i][1]);
      } else {
        _mm512_storeu_ps(ci, _mm512_add_ps(_mm512_loadu_ps(ci), c[i][0]));
        _mm512_storeu_ps(ci + 16, _mm512_add_ps(_mm512_loadu_ps(ci + 16), c[i][1]));
      }
    }
    return;
  }
  alignas(64) float t[MR][32];
  for (int i = 0; i < MR; ++i) {
    _mm512_store_ps(t[i], c[i][0]);
    _mm512_store_ps(t[i] + 16, c[i][1]);
  }
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      float& ci = C[i * ldc + j];
      ci = store ? t[i][j] : ci + t[i][j];
    }
}
#endif

template <typename T>
void micro(Kernel kind, int64_t kc, const T* a, const T* b, T* C, int64_t ldc, bool store, int64_t rows,
           int64_t cols) {
#if SPPO_HAVE_AVX2_PATH
  if constexpr (std::is_same_v<T, float>) {
    if (kind == Kernel::Avx512) return micro_avx512(kc, a, b, C, ldc, store, rows, cols);
    if (kind == Kernel::Avx2) return micro_avx2(kc, a, b, C, ldc, store, rows, cols);
  }
#endif
  (void)kind;
  micro_portable<T, 4, 8>(kc, a, b, C, ldc, store, rows, cols);
}

// ---- x W^T for few rows, without packing W ---------------------------------------------------------
// For the decoder's few rows a packed copy of every weight would cost more than the product. This
// path transposes the few rows of A instead (AT [K][lanes], one vector per k holds that k for up
// to 16 or 8 rows) and reads W = B [N, K] once per row group, straight along its rows: per k one
// AT vector and a broadcast of W[j][k] for 8 columns j. Per C element it is the same FMA chain
// over each kc block as the packed kernels (fma(a, b, c) = fma(b, a, c)), so the results are
// bitwise equal. k blocks are the outer loop so that AT's block stays in L1 across the columns.
#if SPPO_HAVE_AVX2_PATH
constexpr int kSmallCols = 8;  // columns of W per block: 8 independent FMA chains

// acc[c][lane] = sum over k in [0, kc) of AT[k][lane] * W[j0 + c][k0 + k], for the block's columns.
__attribute__((target("avx512f"))) void nt_rows_avx512(const float* AT, const float* B, int64_t K, int64_t j0,
                                                       int64_t cols, int64_t k0, int64_t kc, float* acc) {
  const float* w[kSmallCols];
  for (int c = 0; c < kSmallCols; ++c) w[c] = B + (j0 + std::min<int64_t>(c, cols - 1)) * K + k0;  // spare: discarded
  __m512 a[kSmallCols];
  for (int c = 0; c < kSmallCols; ++c) a[c] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 x = _mm512_loadu_ps(AT + k * 16);
    for (int c = 0; c < kSmallCols; ++c) a[c] = _mm512_fmadd_ps(_mm512_set1_ps(w[c][k]), x, a[c]);
  }
  for (int c = 0; c < kSmallCols; ++c) _mm512_store_ps(acc + c * 16, a[c]);
}

SPPO_TARGET_AVX2 void nt_rows_avx2(const float* AT, const float* B, int64_t K, int64_t j0, int64_t cols, int64_t k0,
                                   int64_t kc, float* acc) {
  const float* w[kSmallCols];
  for (int c = 0; c < kSmallCols; ++c) w[c] = B + (j0 + std::min<int64_t>(c, cols - 1)) * K + k0;
  __m256 a[kSmallCols];
  for (int c = 0; c < kSmallCols; ++c) a[c] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 x = _mm256_loadu_ps(AT + k * 8);
    for (int c = 0; c < kSmallCols; ++c) a[c] = _mm256_fmadd_ps(_mm256_broadcast_ss(w[c] + k), x, a[c]);
  }
  for (int c = 0; c < kSmallCols; ++c) _mm256_store_ps(acc + c * 8, a[c]);
}

// Rows of A per call of the small path: above this, packing W pays for itself.
constexpr int64_t kSmallRows = 64;

void gemm_nt_small(Kernel kind, const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K,
                   bool accumulate) {
  thread_local std::vector<float> at;
  const int64_t blocks = (N + kSmallCols - 1) / kSmallCols;
  for (int64_t i0 = 0; i0 < M;) {
    // 16 lanes only where AVX-512 has more than 8 rows to fill them (it splits 512-bit FMAs in
    // two on some cores, so 8-lane AVX2 FMAs cost the same per useful lane).
    const int64_t L = kind == Kernel::Avx512 && M - i0 > 8 ? 16 : 8;
    const int64_t rows = std::min(L, M - i0);
    at.assign(static_cast<size_t>(K * L), 0.f);
    for (int64_t l = 0; l < rows; ++l)
      for (int64_t k = 0; k < K; ++k) at[k * L + l] = A[(i0 + l) * K + k];
    const float* atp = at.data();  // at is thread_local: the team reads this thread's copy
    const bool par = static_cast<double>(rows) * N * K > 1.0e6 && cpu_threads() > 1;
#ifdef _OPENMP
#pragma omp parallel if (par)
#endif
    {
      alignas(64) float acc[kSmallCols * 16];
      for (int64_t k0 = 0; k0 < K; k0 += kKc) {
        const int64_t kc = std::min(kKc, K - k0);
        const bool store = !accumulate && k0 == 0;
        // The same static split every k block: each C column stays with one thread.
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t b = 0; b < blocks; ++b) {
          const int64_t j0 = b * kSmallCols, cols = std::min<int64_t>(kSmallCols, N - j0);
          if (L == 16) nt_rows_avx512(atp + k0 * 16, B, K, j0, cols, k0, kc, acc);
          else nt_rows_avx2(atp + k0 * 8, B, K, j0, cols, k0, kc, acc);
          for (int64_t c = 0; c < cols; ++c)
            for (int64_t l = 0; l < rows; ++l) {
              float& out = C[(i0 + l) * N + j0 + c];
              out = store ? acc[c * L + l] : out + acc[c * L + l];
            }
        }
      }
    }
    i0 += rows;
  }
}
#endif

// Packed blocks, reused across calls of the same thread (the model calls from one worker thread
// at a time per model; each calling thread has its own).
template <typename T>
struct Packs {
  std::vector<T> a, b;
};
template <typename T>
Packs<T>& packs() {
  thread_local Packs<T> p;
  return p;
}

template <typename T>
void gemm(const Operands<T>& o, T* C, bool accumulate) {
  const Kernel kind = kernel_for<T>();
#if SPPO_HAVE_AVX2_PATH
  if constexpr (std::is_same_v<T, float>) {
    if (kind != Kernel::Portable && o.tb && !o.ta && o.M <= kSmallRows)
      return gemm_nt_small(kind, o.A, o.B, C, o.M, o.N, o.K, accumulate);
  }
#endif
  const Tile tile = tile_of(kind);
  const int64_t mr = tile.mr, nr = tile.nr, M = o.M, N = o.N, K = o.K;
  const int64_t nc_max = std::min(kNc, (N + nr - 1) / nr * nr);
  const int64_t mc_max = std::min(kMc, (M + mr - 1) / mr * mr);
  Packs<T>& pk = packs<T>();
  if (pk.b.size() < static_cast<size_t>(kKc * nc_max)) pk.b.resize(kKc * nc_max);
  if (pk.a.size() < static_cast<size_t>(kKc * mc_max)) pk.a.resize(kKc * mc_max);
  T* bp = pk.b.data();
  T* ap = pk.a.data();
  // Threads only pay off above ~1M multiply-adds (waking them costs more on small products).
  const bool par = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) > 1.0e6 &&
                   cpu_threads() > 1;
#ifdef _OPENMP
#pragma omp parallel if (par)
#endif
  {
    for (int64_t jc = 0; jc < N; jc += kNc) {
      const int64_t nc = std::min(kNc, N - jc);
      const int64_t npanels = (nc + nr - 1) / nr;
      for (int64_t pc = 0; pc < K; pc += kKc) {
        const int64_t kc = std::min(kKc, K - pc);
        const bool store = !accumulate && pc == 0;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t jp = 0; jp < npanels; ++jp) pack_b_panel(o, jc + jp * nr, nr, pc, kc, bp + jp * nr * kc);
        for (int64_t ic = 0; ic < M; ic += kMc) {
          const int64_t mc = std::min(kMc, M - ic);
          const int64_t mpanels = (mc + mr - 1) / mr;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
          for (int64_t ip = 0; ip < mpanels; ++ip) pack_a_panel(o, ic + ip * mr, mr, pc, kc, ap + ip * mr * kc);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
          for (int64_t jp = 0; jp < npanels; ++jp) {
            const int64_t j0 = jp * nr, cols = std::min(nr, nc - j0);
            for (int64_t ip = 0; ip < mpanels; ++ip) {
              const int64_t i0 = ip * mr, rows = std::min(mr, mc - i0);
              micro(kind, kc, ap + ip * mr * kc, bp + jp * nr * kc, C + (ic + i0) * N + jc + j0, N, store, rows,
                    cols);
            }
          }
        }
      }
    }
  }
}

}  // namespace

template <typename T>
void matmul(const T* A, const T* B, T* C, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
            bool accumulate) {
  SPPO_CHECK(M >= 0 && N >= 0 && K >= 0, "matmul: negative size (M = ", M, ", N = ", N, ", K = ", K, ")");
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate) std::fill(C, C + M * N, T(0));
    return;
  }
  gemm(Operands<T>{A, B, M, N, K, trans_a, trans_b}, C, accumulate);
}

template void matmul<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, bool, bool, bool);
template void matmul<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, bool, bool, bool);

}  // namespace sppo::cpu
