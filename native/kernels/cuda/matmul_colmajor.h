// matmul.h's row-major products as the column-major GEMM that cuBLAS(Lt) computes (host-only,
// no CUDA: used by kernels/cuda/matmul.cu, tested without a GPU by tests/test_matmul_colmajor.cpp).
//
// A row-major [r, c] matrix (row stride c) is, byte for byte, the column-major [c, r] matrix with
// leading dimension c, i.e. its transpose. So the row-major C = op(A) op(B) is the column-major
//   C^T = op(B)^T op(A)^T,
// which cuBLAS computes with B as its first operand and A as its second, m = N, n = M, k = K, and
// each operand keeping its own transpose flag:
//   B stored [K, N] is column-major N x K (ld N): already op(B)^T, no transpose;
//   B stored [N, K] (trans_b) is column-major K x N (ld K): transposed to N x K;
//   A stored [M, K] is column-major K x M (ld K): already op(A)^T, no transpose;
//   A stored [K, M] (trans_a) is column-major M x K (ld M): transposed to K x M;
//   C [M, N] is column-major N x M (ld N).
// No data moves: only the descriptions change.
#pragma once
#include <cstdint>

namespace sppo {

// One operand as cuBLAS describes it: the stored (pre-op) column-major shape and the op.
struct ColMajorOperand {
  bool transpose = false;
  int64_t rows = 0, cols = 0, ld = 0;
};

// D(m x n) = op(first)(m x k) op(second)(k x n) + beta C, all column-major.
struct ColMajorGemm {
  int64_t m = 0, n = 0, k = 0;
  ColMajorOperand first;   // the row-major B
  ColMajorOperand second;  // the row-major A
  ColMajorOperand c;       // the row-major C (never transposed)
};

inline ColMajorGemm colmajor_gemm(int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b) {
  ColMajorGemm g;
  g.m = N;
  g.n = M;
  g.k = K;
  g.first = trans_b ? ColMajorOperand{true, K, N, K} : ColMajorOperand{false, N, K, N};
  g.second = trans_a ? ColMajorOperand{true, M, K, M} : ColMajorOperand{false, K, M, K};
  g.c = ColMajorOperand{false, N, M, N};
  return g;
}

}  // namespace sppo
