#include "model/cpu/matmul.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "core/simd.h"
#include "core/simd_avx2.h"
#include "model/cpu/par.h"

namespace sppo::cpu_model {
namespace {

constexpr int kLanes = 16;      // independent partial sums per dot product (vectorizable)
constexpr int64_t kKc = 512;    // K block: partial dots over a block are added to C in order
constexpr int64_t kTileM = 36;  // a multiple of the AVX2 kernel's 3 rows
constexpr int64_t kTileN = 64;

// RM x RN dot products over k in [0, K); lanes are summed in a fixed order, then the tail.
template <typename T, int RM, int RN>
inline void micro_nt(const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, int64_t K,
                     bool store) {
  T s[RM][RN][kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= K; k += kLanes)
    for (int i = 0; i < RM; ++i)
      for (int j = 0; j < RN; ++j)
        for (int l = 0; l < kLanes; ++l) s[i][j][l] += A[i * lda + k + l] * B[j * ldb + k + l];
  T tail[RM][RN] = {};
  for (; k < K; ++k)
    for (int i = 0; i < RM; ++i)
      for (int j = 0; j < RN; ++j) tail[i][j] += A[i * lda + k] * B[j * ldb + k];
  for (int i = 0; i < RM; ++i)
    for (int j = 0; j < RN; ++j) {
      T r = 0;
      for (int l = 0; l < kLanes; ++l) r += s[i][j][l];
      r += tail[i][j];
      T& c = C[i * ldc + j];
      c = store ? r : c + r;
    }
}

template <typename T>
void tile_nt(const T* A, const T* B, T* C, int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t N,
             int64_t K, bool accumulate) {
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t kc = std::min(kKc, K - k0);
    const bool store = !accumulate && k0 == 0;
    int64_t i = i0;
    for (; i + 2 <= i1; i += 2) {
      int64_t j = j0;
      for (; j + 2 <= j1; j += 2)
        micro_nt<T, 2, 2>(A + i * K + k0, K, B + j * K + k0, K, C + i * N + j, N, kc, store);
      for (; j < j1; ++j) micro_nt<T, 2, 1>(A + i * K + k0, K, B + j * K + k0, K, C + i * N + j, N, kc, store);
    }
    for (; i < i1; ++i) {
      int64_t j = j0;
      for (; j + 2 <= j1; j += 2)
        micro_nt<T, 1, 2>(A + i * K + k0, K, B + j * K + k0, K, C + i * N + j, N, kc, store);
      for (; j < j1; ++j) micro_nt<T, 1, 1>(A + i * K + k0, K, B + j * K + k0, K, C + i * N + j, N, kc, store);
    }
  }
}

#if SPPO_HAVE_AVX2_PATH
// AVX2+FMA float kernel, same dot-product form: RM x RN dot products with 8 k-lanes each,
// FMA-accumulated in k order, the k tail as one more masked step, lanes summed by hsum8.
// Every output element gets exactly this sequence whatever RM/RN/tile it falls in, so a
// row's result stays independent of M, N, the tiling and the threads.
template <int RM, int RN>
SPPO_TARGET_AVX2 inline void micro_nt_avx2(const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                                           int64_t ldc, int64_t K, bool store) {
  __m256 s[RM][RN];
  for (int i = 0; i < RM; ++i)
    for (int j = 0; j < RN; ++j) s[i][j] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 a[RM];
    for (int i = 0; i < RM; ++i) a[i] = _mm256_loadu_ps(A + i * lda + k);
    for (int j = 0; j < RN; ++j) {
      const __m256 b = _mm256_loadu_ps(B + j * ldb + k);
      for (int i = 0; i < RM; ++i) s[i][j] = _mm256_fmadd_ps(a[i], b, s[i][j]);
    }
  }
  if (k < K) {
    alignas(32) static const int32_t ramp[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ramp + 8 - (K - k)));
    __m256 a[RM];
    for (int i = 0; i < RM; ++i) a[i] = _mm256_maskload_ps(A + i * lda + k, mask);
    for (int j = 0; j < RN; ++j) {
      const __m256 b = _mm256_maskload_ps(B + j * ldb + k, mask);
      for (int i = 0; i < RM; ++i) s[i][j] = _mm256_fmadd_ps(a[i], b, s[i][j]);
    }
  }
  for (int i = 0; i < RM; ++i)
    for (int j = 0; j < RN; ++j) {
      const float r = simd::hsum8(s[i][j]);
      float& c = C[i * ldc + j];
      c = store ? r : c + r;
    }
}

// 3 x 4 blocks: 12 accumulators + 3 A + 1 B vectors fill the 16 ymm registers.
SPPO_TARGET_AVX2 void tile_nt_avx2(const float* A, const float* B, float* C, int64_t i0, int64_t i1, int64_t j0,
                                   int64_t j1, int64_t N, int64_t K, bool accumulate) {
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t kc = std::min(kKc, K - k0);
    const bool store = !accumulate && k0 == 0;
    int64_t i = i0;
#define SPPO_MM_ROWS(RM)                                                                               \
  {                                                                                                    \
    const float* a = A + i * K + k0;                                                                   \
    float* c = C + i * N;                                                                              \
    int64_t j = j0;                                                                                    \
    for (; j + 4 <= j1; j += 4) micro_nt_avx2<RM, 4>(a, K, B + j * K + k0, K, c + j, N, kc, store);   \
    switch (j1 - j) {                                                                                  \
      case 3: micro_nt_avx2<RM, 3>(a, K, B + j * K + k0, K, c + j, N, kc, store); break;               \
      case 2: micro_nt_avx2<RM, 2>(a, K, B + j * K + k0, K, c + j, N, kc, store); break;               \
      case 1: micro_nt_avx2<RM, 1>(a, K, B + j * K + k0, K, c + j, N, kc, store); break;               \
      default: break;                                                                                  \
    }                                                                                                  \
  }
    for (; i + 3 <= i1; i += 3) SPPO_MM_ROWS(3)
    if (i1 - i == 2) SPPO_MM_ROWS(2)
    else if (i1 - i == 1) SPPO_MM_ROWS(1)
#undef SPPO_MM_ROWS
  }
}
#endif

template <typename T>
void tile_nt_dispatch(const T* A, const T* B, T* C, int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t N,
                      int64_t K, bool accumulate) {
#if SPPO_HAVE_AVX2_PATH
  if constexpr (std::is_same_v<T, float>) {
    if (simd::use_avx2()) return tile_nt_avx2(A, B, C, i0, i1, j0, j1, N, K, accumulate);
  }
#endif
  tile_nt(A, B, C, i0, i1, j0, j1, N, K, accumulate);
}

#if SPPO_HAVE_AVX2_PATH
// One block of transpose(): 8 x 8 sub-blocks through registers, the ragged edges one by one.
SPPO_TARGET_AVX2 void transpose_block_avx2(const float* in, int64_t R, int64_t C, float* out, int64_t r0, int64_t r1,
                                           int64_t c0, int64_t c1) {
  int64_t r = r0;
  for (; r + 8 <= r1; r += 8) {
    int64_t c = c0;
    for (; c + 8 <= c1; c += 8) {
      __m256 x[8];
      for (int i = 0; i < 8; ++i) x[i] = _mm256_loadu_ps(in + (r + i) * C + c);
      simd::transpose8x8(x);
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + (c + i) * R + r, x[i]);
    }
    for (int64_t i = r; i < r + 8; ++i)
      for (int64_t cc = c; cc < c1; ++cc) out[cc * R + i] = in[i * C + cc];
  }
  for (; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c) out[c * R + r] = in[r * C + c];
}
#endif

// out[C, R] = in[R, C]^T, in cache-sized blocks.
template <typename T>
void transpose(const T* in, int64_t R, int64_t C, T* out) {
  constexpr int64_t kB = 32;
  const int64_t rb = (R + kB - 1) / kB, cb = (C + kB - 1) / kB;
  parallel_for_cost(rb * cb, double(kB) * kB, [&](int64_t t) {
    const int64_t r0 = (t / cb) * kB, r1 = std::min(R, r0 + kB);
    const int64_t c0 = (t % cb) * kB, c1 = std::min(C, c0 + kB);
#if SPPO_HAVE_AVX2_PATH
    if constexpr (std::is_same_v<T, float>) {
      if (simd::use_avx2()) return transpose_block_avx2(in, R, C, out, r0, r1, c0, c1);
    }
#endif
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = c0; c < c1; ++c) out[c * R + r] = in[r * C + c];
  });
}

}  // namespace

template <typename T>
void matmul_nt(const T* A, const T* B, T* C, int64_t M, int64_t N, int64_t K, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate) std::fill(C, C + M * N, T(0));
    return;
  }
  const int64_t mt = (M + kTileM - 1) / kTileM, nt = (N + kTileN - 1) / kTileN;
  parallel_for_cost(mt * nt, double(kTileM) * kTileN * K, [&](int64_t t) {
    const int64_t i0 = (t / nt) * kTileM, j0 = (t % nt) * kTileN;
    tile_nt_dispatch(A, B, C, i0, std::min(M, i0 + kTileM), j0, std::min(N, j0 + kTileN), N, K, accumulate);
  });
}

// The dot-product (NT) kernel is about twice as fast as an axpy formulation on the CPUs we
// target, so the other two forms transpose their operands (O(size) work) and use it.
template <typename T>
void matmul_nn(const T* A, const T* B, T* C, int64_t M, int64_t N, int64_t K, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  std::vector<T> Bt(N * K);
  transpose(B, K, N, Bt.data());
  matmul_nt(A, Bt.data(), C, M, N, K, accumulate);
}

template <typename T>
void matmul_tn_acc(const T* A, const T* B, T* C, int64_t M, int64_t N, int64_t K) {
  if (M <= 0 || N <= 0 || K <= 0) return;
  // C[N,K] += (A^T)[N,M] (B^T)[K,M]^T
  std::vector<T> At(N * M), Bt(K * M);
  transpose(A, M, N, At.data());
  transpose(B, M, K, Bt.data());
  matmul_nt(At.data(), Bt.data(), C, N, K, M, true);
}

template void matmul_nt<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, bool);
template void matmul_nt<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, bool);
template void matmul_nn<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, bool);
template void matmul_nn<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, bool);
template void matmul_tn_acc<float>(const float*, const float*, float*, int64_t, int64_t, int64_t);
template void matmul_tn_acc<double>(const double*, const double*, double*, int64_t, int64_t, int64_t);

}  // namespace sppo::cpu_model
