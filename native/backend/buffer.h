// Backend memory with an owner: Buffer (one allocation) and Arena (one allocation cut into named,
// aligned views: the weights of a model, its gradients, optimizer state, activations). Arenas are
// planned first (names, types, sizes), so the total is known, printed and checked before the
// allocation is made.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"

namespace sppo {

class Buffer {
 public:
  Buffer() = default;
  Buffer(std::shared_ptr<Backend> be, std::size_t bytes) : be_(std::move(be)), bytes_(bytes) {
    if (bytes_) ptr_ = be_->allocate(bytes_);
  }
  ~Buffer() { reset(); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      reset();
      be_ = std::move(o.be_);
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  void reset() {
    if (ptr_) be_->deallocate(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* data() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }
  // numel elements of `dtype` at byte offset `offset`, checked against the allocation.
  Tensor view(DType dtype, int64_t numel, std::size_t offset = 0) const {
    SPPO_CHECK(numel >= 0 && offset + static_cast<std::size_t>(numel) * dtype_size(dtype) <= bytes_,
               "buffer view of ", numel, " ", dtype_name(dtype), " at byte ", offset, " exceeds the ", bytes_,
               "-byte buffer");
    return Tensor(static_cast<char*>(ptr_) + offset, dtype, numel);
  }

 private:
  std::shared_ptr<Backend> be_;
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

// Views are aligned to kArenaAlign bytes (vector loads, and bf16 views of fp32 layouts).
constexpr std::size_t kArenaAlign = 256;

struct ArenaEntry {
  std::string name;
  DType dtype = DType::F32;
  int64_t numel = 0;
  std::size_t offset = 0;  // bytes
};

// The layout of an arena before it is allocated.
class ArenaPlan {
 public:
  // Appends a view; returns its index.
  std::size_t add(std::string name, DType dtype, int64_t numel);
  const std::vector<ArenaEntry>& entries() const { return entries_; }
  std::size_t bytes() const { return bytes_; }

 private:
  std::vector<ArenaEntry> entries_;
  std::size_t bytes_ = 0;
};

class Arena {
 public:
  Arena() = default;
  // `what` names the arena in the error when the backend cannot hold it.
  Arena(std::shared_ptr<Backend> be, ArenaPlan plan, const std::string& what);
  Tensor operator[](std::size_t i) const;
  const ArenaPlan& plan() const { return plan_; }
  std::size_t bytes() const { return buffer_.bytes(); }
  bool empty() const { return buffer_.bytes() == 0; }

 private:
  ArenaPlan plan_;
  Buffer buffer_;
};

// Bytes as a human figure ("1.23 GiB"), for plans and errors.
std::string format_bytes(double bytes);

}  // namespace sppo
