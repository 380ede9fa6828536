// Matrix products of the model (CONTRACT: cpu/matmul.cpp; cuda/matmul.cu through cuBLASLt).
//   C[M, N] = op(A) op(B)   (C += ... when accumulate)
//   op(A) = A stored [M, K] row-major, or A^T when trans_a (A stored [K, M]);
//   op(B) = B stored [K, N] row-major, or B^T when trans_b (B stored [N, K]).
// The three forms the model uses: x W^T (trans_b), dY W (none), dW += dY^T X (trans_a).
//
// Summation order (CPU): each C element is a sum over k in increasing order, in blocks of
// kMatmulKc: within a block one fused multiply-add chain from zero, and each block's chain is then
// added to C in block order (C starts at 0 unless accumulate). The order depends only on K, never
// on M, N, the blocking or the threads: a row's result is bitwise the same alone or in a batch,
// recomputation (gradient checkpointing) reproduces it, and the AVX-512 and AVX2 kernels agree
// bit for bit. The portable kernel (no FMA) differs from them by fp32 rounding.
#pragma once
#include <cstdint>
#include <memory>

#include "core/dtype.h"

namespace sppo {

constexpr int64_t kMatmulKc = 256;

namespace cpu {
template <typename T>
void matmul(const T* A, const T* B, T* C, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
            bool accumulate);
}  // namespace cpu

#ifdef SPPO_WITH_CUDA
namespace cuda {
// The CUDA twin (cuda/matmul.cu): cuBLASLt, loaded at run time (runtime/cublaslt_shim.h), on one
// stream, never synchronising. A and B are F32 or BF16 (both the same); C is F32, or BF16 over
// BF16 inputs; products accumulate in fp32 (no TF32). Row-major operands reach cuBLASLt through
// the column-major mapping of kernels/cuda/matmul_colmajor.h. The summation order is cuBLASLt's,
// fixed for a given shape, GPU and library (run to run the same bits), but not the CPU's: results
// agree with the CPU to fp32 rounding. One object per stream: its handle, workspace and the
// algorithm chosen per shape.
class Matmul {
 public:
  explicit Matmul(void* stream);  // a cudaStream_t; loads nothing until the first product
  ~Matmul();
  Matmul(const Matmul&) = delete;
  Matmul& operator=(const Matmul&) = delete;
  // Device pointers; throws sppo::Error (cuBLASLt missing, no algorithm, bad types) before queuing.
  void run(const void* A, const void* B, void* C, DType in, DType out, int64_t M, int64_t N, int64_t K, bool trans_a,
           bool trans_b, bool accumulate);

 private:
  struct State;
  std::unique_ptr<State> s_;
};
}  // namespace cuda
#endif

}  // namespace sppo
