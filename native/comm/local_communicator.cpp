// The world-size-1 communicator (comm/communicator.h).
#include <chrono>
#include <memory>
#include <mutex>

#include "backend/backend.h"
#include "comm/communicator.h"
#include "comm/finish_times.h"
#include "core/error.h"

namespace sppo {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

namespace {

class LocalCommunicator final : public Communicator {
 public:
  explicit LocalCommunicator(std::shared_ptr<Backend> be) : be_(std::move(be)) {}
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  const char* kind() const override { return "local"; }
  void all_reduce(const Tensor& data, int64_t count) override {
    begin();
    require(data, data.dtype, count, "all_reduce", "data");
    done();
  }
  void reduce_scatter(const Tensor& send, const Tensor& recv, int64_t count) override {
    begin();
    require(send, send.dtype, count, "reduce_scatter", "send");
    require(recv, send.dtype, count, "reduce_scatter", "recv");
    if (send.data != recv.data) be_->copy(recv.data, send.data, static_cast<std::size_t>(count) * dtype_size(send.dtype));
    done();
  }
  void all_gather(const Tensor& send, const Tensor& recv, int64_t count) override {
    begin();
    require(send, send.dtype, count, "all_gather", "send");
    require(recv, send.dtype, count, "all_gather", "recv");
    if (send.data != recv.data) be_->copy(recv.data, send.data, static_cast<std::size_t>(count) * dtype_size(send.dtype));
    done();
  }
  void broadcast(const Tensor& data, int64_t count, int root) override {
    begin();
    SPPO_CHECK(root == 0, "broadcast: root ", root, " is not a rank of a world of 1");
    require(data, data.dtype, count, "broadcast", "data");
    done();
  }
  void wait() override { begin(); }
  void barrier() override { begin(); }
  void abort(const std::string& why) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (why_.empty()) why_ = why.empty() ? "aborted" : why;
  }
  int64_t queued() const override { return times_.queued(); }
  double finished_at(int64_t op) const override { return times_.at(op); }

 private:
  void begin() const {
    std::lock_guard<std::mutex> lock(mu_);
    if (!why_.empty()) fail(why_);
  }
  void done() { times_.finish(times_.queue(), steady_seconds()); }
  std::shared_ptr<Backend> be_;
  mutable std::mutex mu_;
  std::string why_;
  comm::FinishTimes times_;
};

}  // namespace

std::shared_ptr<Communicator> make_local_communicator(std::shared_ptr<Backend> backend) {
  return std::make_shared<LocalCommunicator>(std::move(backend));
}

}  // namespace sppo
