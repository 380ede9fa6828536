// What LlamaModel and PairRmModel do alike around their weight arena: refuse a precision the
// backend does not compute in, allocate the zeroed arena, draw seeded normals, store host values
// in the arena's dtype, and copy arena tensors out as F32/F64 (weight_arena.cpp).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/buffer.h"
#include "core/tensor.h"
#include "model/precision.h"

namespace sppo {

// Throws unless `be` computes in `p` (the CPU: fp32, fp64, bf16 emulated; CUDA: fp32/bf16).
void check_precision_on(const Backend& be, Precision p);

// A zeroed buffer for `elements` weights of `dtype`; `what` names them in the out-of-memory error
// ("the model's weights").
Buffer zeroed_weights(const std::shared_ptr<Backend>& be, DType dtype, int64_t elements, const char* what);

// Fills `v` with normal(0, std) draws: Box-Muller on splitmix64 advancing `state`, portable and
// deterministic in the seed.
void fill_normal(std::vector<double>& v, uint64_t& state, double std);

// Uploads `v` (dst.numel values) into `dst`, converted to its dtype (F64, F32 or BF16).
void upload_values(Backend& be, const Tensor& dst, const std::vector<double>& v);

// Copies n elements of `src` (F32, F64 or BF16) into the host tensor `out` (F32 or F64).
void download_as(Backend& be, const Tensor& src, const Tensor& out, int64_t n);

}  // namespace sppo
