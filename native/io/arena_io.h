// Safetensors byte ranges into and out of backend tensors (arena slices): reads convert the file's
// dtype to the tensor's (through a host staging copy of one tensor at most), writes hand
// write_safetensors host fp32 views (the tensors themselves on the CPU backend in fp32, copies
// otherwise).
#pragma once
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/tensor_file.h"

namespace sppo::io {

// Fills `dst` from `nbytes` at `offset` of `path` (checked as read_tensor does).
void load_into(const std::string& path, uint64_t offset, uint64_t nbytes, DType file_dtype, Backend& be,
               const Tensor& dst, const std::string& what);

struct HostFloats {
  std::vector<std::vector<float>> copies;
  std::vector<TensorSource> sources;  // one per tensor, in order
};
HostFloats host_floats(Backend& be, const std::vector<Tensor>& tensors);

}  // namespace sppo::io
