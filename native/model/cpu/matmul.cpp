#include "model/cpu/matmul.h"

#include <algorithm>

#include "model/cpu/par.h"

namespace sppo::cpu_model {
namespace {

constexpr int kLanes = 8;       // independent partial sums per dot product (vectorizable)
constexpr int64_t kKc = 512;    // K block: partial dots over a block are added to C in order
constexpr int64_t kTileM = 32;
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

// RM x RN block of C held in registers while k runs over [k0, k1): each element is updated as
// c += a(i,k) * b(k,j) in increasing k, whatever the blocking, so results do not depend on M.
template <typename T, int RM, int RN>
inline void micro_axpy_full(const T* A, int64_t sai, int64_t sak, const T* B, int64_t ldb, T* C, int64_t ldc,
                            int64_t k0, int64_t k1) {
  T acc[RM][RN];
  for (int i = 0; i < RM; ++i)
    for (int j = 0; j < RN; ++j) acc[i][j] = C[i * ldc + j];
  for (int64_t k = k0; k < k1; ++k) {
    const T* b = B + k * ldb;
    T a[RM];
    for (int i = 0; i < RM; ++i) a[i] = A[i * sai + k * sak];
    for (int i = 0; i < RM; ++i)
      for (int j = 0; j < RN; ++j) acc[i][j] += a[i] * b[j];
  }
  for (int i = 0; i < RM; ++i)
    for (int j = 0; j < RN; ++j) C[i * ldc + j] = acc[i][j];
}

// The same update for a partial block at the edge of C (identical arithmetic per element).
template <typename T>
inline void micro_axpy_edge(const T* A, int64_t sai, int64_t sak, const T* B, int64_t ldb, T* C, int64_t ldc,
                            int64_t k0, int64_t k1, int rows, int cols) {
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) {
      T c = C[i * ldc + j];
      for (int64_t k = k0; k < k1; ++k) c += A[i * sai + k * sak] * B[k * ldb + j];
      C[i * ldc + j] = c;
    }
}

// C[M,N] (+)= sum_k a(i,k) * B[k,:], a(i,k) = A[i*sai + k*sak]. Tiles of C in parallel; inside a
// tile, k is blocked so that the B block stays in cache while all row groups use it.
template <typename T>
void gemm_axpy(const T* A, int64_t sai, int64_t sak, const T* B, T* C, int64_t M, int64_t N, int64_t K,
               bool accumulate) {
  constexpr int RM = 4, RN = 8;
  constexpr int64_t kTileRows = 32, kTileCols = 128, kKb = 256;
  const int64_t mb = (M + kTileRows - 1) / kTileRows, nb = (N + kTileCols - 1) / kTileCols;
  parallel_for_cost(mb * nb, double(kTileRows) * kTileCols * K, [&](int64_t t) {
    const int64_t i0 = (t / nb) * kTileRows, i1 = std::min(M, i0 + kTileRows);
    const int64_t j0 = (t % nb) * kTileCols, j1 = std::min(N, j0 + kTileCols);
    if (!accumulate)
      for (int64_t i = i0; i < i1; ++i) std::fill(C + i * N + j0, C + i * N + j1, T(0));
    for (int64_t k0 = 0; k0 < K; k0 += kKb) {
      const int64_t k1 = std::min(K, k0 + kKb);
      for (int64_t i = i0; i < i1; i += RM)
        for (int64_t j = j0; j < j1; j += RN)
          if (i + RM <= i1 && j + RN <= j1)
            micro_axpy_full<T, RM, RN>(A + i * sai, sai, sak, B + j, N, C + i * N + j, N, k0, k1);
          else
            micro_axpy_edge<T>(A + i * sai, sai, sak, B + j, N, C + i * N + j, N, k0, k1,
                               static_cast<int>(std::min<int64_t>(RM, i1 - i)),
                               static_cast<int>(std::min<int64_t>(RN, j1 - j)));
    }
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
    tile_nt(A, B, C, i0, std::min(M, i0 + kTileM), j0, std::min(N, j0 + kTileN), N, K, accumulate);
  });
}

template <typename T>
void matmul_nn(const T* A, const T* B, T* C, int64_t M, int64_t N, int64_t K, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  gemm_axpy(A, K, int64_t(1), B, C, M, N, K, accumulate);
}

template <typename T>
void matmul_tn_acc(const T* A, const T* B, T* C, int64_t M, int64_t N, int64_t K) {
  if (M <= 0 || N <= 0 || K <= 0) return;
  // C[n, k] += sum_m A[m, n] B[m, k]: C has N rows of K columns, the "inner" index is m.
  gemm_axpy(A, int64_t(1), N, B, C, N, K, M, true);
}

template void matmul_nt<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, bool);
template void matmul_nt<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, bool);
template void matmul_nn<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, bool);
template void matmul_nn<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, bool);
template void matmul_tn_acc<float>(const float*, const float*, float*, int64_t, int64_t, int64_t);
template void matmul_tn_acc<double>(const double*, const double*, double*, int64_t, int64_t, int64_t);

}  // namespace sppo::cpu_model
