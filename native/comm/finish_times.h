// When each of a communicator's collectives finished (for Communicator::finished_at): the last
// kKeep of them, so that a long run does not grow a list per collective. Thread-safe.
#pragma once
#include <cstdint>
#include <limits>
#include <mutex>
#include <vector>

namespace sppo::comm {

class FinishTimes {
 public:
  static constexpr int64_t kKeep = 1 << 14;
  // A new collective was queued: its index.
  int64_t queue() {
    std::lock_guard<std::mutex> lock(mu_);
    return queued_++;
  }
  void finish(int64_t op, double seconds) {
    std::lock_guard<std::mutex> lock(mu_);
    if (ring_.empty()) ring_.assign(static_cast<size_t>(kKeep), std::numeric_limits<double>::quiet_NaN());
    ring_[static_cast<size_t>(op % kKeep)] = seconds;
    if (op + 1 > finished_) finished_ = op + 1;
  }
  int64_t queued() const {
    std::lock_guard<std::mutex> lock(mu_);
    return queued_;
  }
  double at(int64_t op) const {
    std::lock_guard<std::mutex> lock(mu_);
    if (op < 0 || op >= finished_ || op < finished_ - kKeep || ring_.empty()) return std::numeric_limits<double>::quiet_NaN();
    return ring_[static_cast<size_t>(op % kKeep)];
  }

 private:
  mutable std::mutex mu_;
  std::vector<double> ring_;
  int64_t queued_ = 0, finished_ = 0;
};

}  // namespace sppo::comm
