// Token embedding lookup, forward and backward (CONTRACT: cpu/embedding.cpp and
// cuda/embedding.cu, with the same results).
//   forward:  out[r, :] = table[ids[r], :]; ids[r] < 0 marks a padding row: out[r, :] = 0
//   backward: dtable[ids[r], :] += dout[r, :] for every r with ids[r] >= 0
// Deterministic: each table row's sum runs over r in increasing order, whatever the threads.
// ids >= V are refused (the model checks ids on the host first; this is the memory-safety check).
// In the bf16 mode dtable (a weight gradient) is F32, or BF16 (the trainer's bf16 gradient arena):
// then each row's additions run in fp32 from widen(dtable) and the sum is rounded once into dtable
// (the CPU by emulation: backend/half_emulation.h; CUDA in its final write).
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "runtime/cuda_launch.h"

namespace sppo::cpu {

template <typename T>
void embedding_forward(const T* table, int64_t V, int64_t H, const int32_t* ids, int64_t n, T* out);

template <typename T>
void embedding_backward(const T* dout, const int32_t* ids, int64_t n, int64_t V, int64_t H, T* dtable);

}  // namespace sppo::cpu

#ifdef SPPO_WITH_CUDA
namespace sppo::cuda {
// Same contract on device memory, queued without synchronising. table/out (forward) and dout
// (backward) are F32 or BF16 (`dtype`); dtable is `dtable_dtype`: F32, or BF16 with BF16 dout (the
// bf16 gradient arena: fp32 sum, one rounding in the final write). An id >= V is
// recorded in the stream's deferred error word and thrown, with the CPU's message, at the next
// check. Backward is deterministic without float atomics: the row indices are stably sorted by id
// (CUB radix sort), then each table row's first sorted position owns it and adds its rows' dout
// in increasing row order, the CPU's order (fp32 additions only, so the same bits as the CPU).
void embedding_forward(const void* table, DType dtype, int64_t V, int64_t H, const int32_t* ids, int64_t n, void* out,
                       const Launch& launch);
void embedding_backward(const void* dout, DType dtype, const int32_t* ids, int64_t n, int64_t V, int64_t H,
                        void* dtable, DType dtable_dtype, const Launch& launch);
}  // namespace sppo::cuda
#endif
