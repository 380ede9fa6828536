// A view of backend memory (host memory on the CPU backend, device memory on CUDA): pointer,
// element type and element count. Every op checks the views it is given against the shapes it is
// asked to compute, so a wrong size is an error naming the op and argument, never an overrun.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/error.h"

namespace sppo {

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  int64_t numel = 0;

  Tensor() = default;
  Tensor(void* d, DType t, int64_t n) : data(d), dtype(t), numel(n) {}

  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
  std::size_t bytes() const { return static_cast<std::size_t>(numel) * dtype_size(dtype); }
  bool empty() const { return data == nullptr; }

  // Elements [offset, offset + count) as a view; throws when the range is outside this one.
  Tensor slice(int64_t offset, int64_t count) const {
    SPPO_CHECK(offset >= 0 && count >= 0 && offset + count <= numel, "tensor slice [", offset, ", ", offset + count,
               ") is outside a tensor of ", numel, " elements");
    return Tensor(static_cast<char*>(data) + static_cast<std::size_t>(offset) * dtype_size(dtype), dtype, count);
  }
};

// Throws unless `t` has element type `dtype` and at least `need` elements (and a pointer when
// need > 0). `op` and `arg` name the call in the message.
inline void require(const Tensor& t, DType dtype, int64_t need, const char* op, const char* arg) {
  SPPO_CHECK(t.dtype == dtype, op, ": ", arg, " must be ", dtype_name(dtype), " (got ", dtype_name(t.dtype), ")");
  SPPO_CHECK(need >= 0, op, ": ", arg, " size is negative (", need, ")");
  SPPO_CHECK(t.numel >= need, op, ": ", arg, " has ", t.numel, " elements, needs ", need);
  SPPO_CHECK(need == 0 || t.data != nullptr, op, ": ", arg, " is null");
}

}  // namespace sppo
