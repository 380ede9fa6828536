// Blocked fp32/fp64 matrix products for the CPU model, parallel with sppo::parallel_for.
// Each output element is summed in a fixed order that depends only on the inner (summed)
// dimension, never on the other sizes, the blocking or the thread count: a row's result is
// bitwise the same alone or in a batch, and recomputation (gradient checkpointing) reproduces it.
// float products use an AVX2+FMA kernel where the CPU has it (chosen once per process, see
// core/simd.h), the portable kernel elsewhere: results differ between the two by fp32 rounding.
#pragma once
#include <cstdint>

namespace sppo::cpu_model {

// C[M,N] = A[M,K] * B[N,K]^T   (+= when accumulate). The x @ W^T of a linear layer.
template <typename T>
void matmul_nt(const T* A, const T* B, T* C, int64_t M, int64_t N, int64_t K, bool accumulate);

// C[M,N] = A[M,K] * B[K,N]     (+= when accumulate). dX = dY @ W.
template <typename T>
void matmul_nn(const T* A, const T* B, T* C, int64_t M, int64_t N, int64_t K, bool accumulate);

// C[N,K] += A[M,N]^T * B[M,K]. Weight gradients dW += dY^T @ X.
template <typename T>
void matmul_tn_acc(const T* A, const T* B, T* C, int64_t M, int64_t N, int64_t K);

}  // namespace sppo::cpu_model
