// Token embedding lookup, forward and backward (CONTRACT: cpu/embedding.cpp; the CUDA engine
// adds cuda/embedding.cu with the same results).
//   forward:  out[r, :] = table[ids[r], :]; ids[r] < 0 marks a padding row: out[r, :] = 0
//   backward: dtable[ids[r], :] += dout[r, :] for every r with ids[r] >= 0
// Deterministic: each table row's sum runs over r in increasing order, whatever the threads.
// ids >= V are refused (the model checks ids on the host first; this is the memory-safety check).
#pragma once
#include <cstdint>

namespace sppo::cpu {

template <typename T>
void embedding_forward(const T* table, int64_t V, int64_t H, const int32_t* ids, int64_t n, T* out);

template <typename T>
void embedding_backward(const T* dout, const int32_t* ids, int64_t n, int64_t V, int64_t H, T* dtable);

}  // namespace sppo::cpu
