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

// C[M,N] (+)= sum_k a(i,k) * B[k,:], a(i,k) = A[i*sai + k*sak]: rows of C are updated with
// axpys over contiguous columns, each element summed over k in order.
template <typename T>
void gemm_axpy(const T* A, int64_t sai, int64_t sak, const T* B, T* C, int64_t M, int64_t N, int64_t K,
               bool accumulate) {
  constexpr int64_t kRows = 4, kCols = 256;
  const int64_t mb = (M + kRows - 1) / kRows, nb = (N + kCols - 1) / kCols;
  parallel_for_cost(mb * nb, double(kRows) * kCols * K, [&](int64_t t) {
    const int64_t i0 = (t / nb) * kRows, i1 = std::min(M, i0 + kRows);
    const int64_t j0 = (t % nb) * kCols, j1 = std::min(N, j0 + kCols);
    if (!accumulate)
      for (int64_t i = i0; i < i1; ++i) std::fill(C + i * N + j0, C + i * N + j1, T(0));
    for (int64_t k = 0; k < K; ++k) {
      const T* b = B + k * N;
      for (int64_t i = i0; i < i1; ++i) {
        const T a = A[i * sai + k * sak];
        T* c = C + i * N;
        for (int64_t j = j0; j < j1; ++j) c[j] += a * b[j];
      }
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
