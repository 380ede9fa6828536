// A JS typed array's memory as a backend sees it: the array itself on a host-accessible backend
// (the CPU: no copy), otherwise a device copy, uploaded at construction when it is an input and
// copied back by fetch() when it is an output. Used by the kernel bindings, so that one code path
// serves every backend.
#pragma once
#include <memory>

#include "backend/buffer.h"

namespace sppo::addon {

class Staged {
 public:
  // `host` is only written by fetch(), which inputs never call (hence the const).
  Staged(const std::shared_ptr<Backend>& be, const void* host, DType dtype, int64_t n, bool upload)
      : be_(be), host_(const_cast<void*>(host)), dtype_(dtype), n_(n) {
    if (be_->host_accessible() || n == 0) return;
    dev_ = Buffer(be_, static_cast<std::size_t>(n) * dtype_size(dtype));
    if (upload && host) be_->upload(dev_.data(), host, dev_.bytes());
  }
  Tensor tensor() const {
    if (n_ == 0 || !host_) return Tensor();
    return Tensor(be_->host_accessible() ? host_ : dev_.data(), dtype_, n_);
  }
  void fetch() const {
    if (!be_->host_accessible() && n_ > 0 && host_) be_->download(host_, dev_.data(), dev_.bytes());
  }

 private:
  std::shared_ptr<Backend> be_;
  void* host_;
  DType dtype_;
  int64_t n_;
  Buffer dev_;
};

}  // namespace sppo::addon
