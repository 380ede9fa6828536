// Reusable working memory of one kind (activations, a head's chunk buffers, a decode step's rows):
// take(plan) returns the plan's views, reallocating only when the plan is bigger than what is held,
// so a batch shape's buffers are allocated once and reused. Views from an earlier take() are
// invalid after the next one.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/buffer.h"

namespace sppo {

class Workspace {
 public:
  Workspace(std::shared_ptr<Backend> be, std::string what) : be_(std::move(be)), what_(std::move(what)) {}

  std::vector<Tensor> take(const ArenaPlan& plan) {
    if (plan.bytes() > buffer_.bytes()) {
      const std::size_t have = be_->available_memory() + buffer_.bytes();
      SPPO_CHECK(plan.bytes() <= have, what_, " needs ", format_bytes(static_cast<double>(plan.bytes())), " but the ",
                 be_->name(), " backend has ", format_bytes(static_cast<double>(have)), " available");
      buffer_.reset();
      buffer_ = Buffer(be_, allocation(plan));
    }
    std::vector<Tensor> views;
    views.reserve(plan.entries().size());
    for (const auto& e : plan.entries()) views.push_back(buffer_.view(e.dtype, e.numel, e.offset));
    return views;
  }
  std::size_t bytes() const { return buffer_.bytes(); }
  // What take(plan) allocates when it has to grow: the plan and some headroom, so that slowly
  // growing shapes do not reallocate every call (the static planner counts the same bytes).
  static std::size_t allocation(const ArenaPlan& plan) { return plan.bytes() + plan.bytes() / 8; }
  void release() { buffer_.reset(); }

 private:
  std::shared_ptr<Backend> be_;
  std::string what_;
  Buffer buffer_;
};

}  // namespace sppo
