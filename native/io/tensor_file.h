// Tensor bytes in and out of safetensors files. TypeScript parses and validates the JSON header
// and hands the core plain byte ranges; this layer re-checks every range against the file size
// before reading, converts F32/BF16/F16 to fp32, and writes files atomically (temp, fsync, rename).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace sppo::io {

// Parses "F32" | "BF16" | "F16"; throws sppo::Error naming `what` otherwise.
DType parse_tensor_dtype(const std::string& name, const std::string& what);

// Reads `nbytes` at `offset` of `path` into `dst` (numel fp32 values). Checks that the range lies
// inside the file and that nbytes == numel * dtype size; errors name the file and `what`.
void read_tensor(const std::string& path, uint64_t offset, uint64_t nbytes, DType dtype, float* dst,
                 int64_t numel, const std::string& what);

struct TensorSource {
  const float* data = nullptr;
  int64_t numel = 0;
};

// Writes a safetensors file: the 8-byte little-endian length of `header_json`, the header, then
// every tensor in order converted to `dtype` (F32 or BF16 or F16). `header_json` must already
// describe exactly these tensors in this order (TypeScript builds it); the total data size is
// checked against `expected_data_bytes`. Written to `path`.tmp-<pid>, fsynced, renamed over `path`.
void write_safetensors(const std::string& path, const std::string& header_json,
                       const std::vector<TensorSource>& tensors, DType dtype, uint64_t expected_data_bytes);

}  // namespace sppo::io
