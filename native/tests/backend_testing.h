// Helpers for suites that run an op on two backends (CUDA against the CPU twin): typed device
// copies of host vectors, poisoned outputs, and downloads.
#pragma once
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/buffer.h"

namespace sppo_test {

// A device copy of a host vector (or an output of n elements poisoned with NaN bytes), optionally
// at an element offset inside a bigger allocation (to test unaligned starts).
class Dev {
 public:
  template <typename T>
  Dev(const std::shared_ptr<sppo::Backend>& be, const std::vector<T>& host, sppo::DType dt, int64_t offset = 0)
      : be_(be), n_(static_cast<int64_t>(host.size())), dt_(dt), offset_(offset) {
    buf_ = sppo::Buffer(be, static_cast<size_t>(n_ + offset + 16) * sppo::dtype_size(dt));
    if (n_) be->upload(data(), host.data(), static_cast<size_t>(n_) * sppo::dtype_size(dt));
  }
  Dev(const std::shared_ptr<sppo::Backend>& be, int64_t n, sppo::DType dt, int64_t offset = 0)
      : be_(be), n_(n), dt_(dt), offset_(offset) {
    buf_ = sppo::Buffer(be, static_cast<size_t>(n_ + offset + 16) * sppo::dtype_size(dt));
    std::vector<unsigned char> poison(buf_.bytes(), 0xff);  // NaN for every float type
    be->upload(buf_.data(), poison.data(), poison.size());
  }
  void* data() const { return static_cast<char*>(buf_.data()) + offset_ * sppo::dtype_size(dt_); }
  sppo::Tensor t() const { return sppo::Tensor(data(), dt_, n_); }
  template <typename T>
  std::vector<T> get() const {
    std::vector<T> out(static_cast<size_t>(n_));
    if (n_) be_->download(out.data(), data(), static_cast<size_t>(n_) * sppo::dtype_size(dt_));
    return out;
  }

 private:
  std::shared_ptr<sppo::Backend> be_;
  sppo::Buffer buf_;
  int64_t n_;
  sppo::DType dt_;
  int64_t offset_;
};

}  // namespace sppo_test
