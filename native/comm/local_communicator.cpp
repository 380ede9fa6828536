// The world-size-1 communicator (comm/communicator.h).
#include <memory>

#include "backend/backend.h"
#include "comm/communicator.h"
#include "core/error.h"

namespace sppo {
namespace {

class LocalCommunicator final : public Communicator {
 public:
  explicit LocalCommunicator(std::shared_ptr<Backend> be) : be_(std::move(be)) {}
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  const char* kind() const override { return "local"; }
  void all_reduce(const Tensor& data, int64_t count) override { require(data, data.dtype, count, "all_reduce", "data"); }
  void reduce_scatter(const Tensor& send, const Tensor& recv, int64_t count) override {
    require(send, send.dtype, count, "reduce_scatter", "send");
    require(recv, send.dtype, count, "reduce_scatter", "recv");
    if (send.data != recv.data) be_->copy(recv.data, send.data, static_cast<std::size_t>(count) * dtype_size(send.dtype));
  }
  void all_gather(const Tensor& send, const Tensor& recv, int64_t count) override {
    require(send, send.dtype, count, "all_gather", "send");
    require(recv, send.dtype, count, "all_gather", "recv");
    if (send.data != recv.data) be_->copy(recv.data, send.data, static_cast<std::size_t>(count) * dtype_size(send.dtype));
  }
  void broadcast(const Tensor& data, int64_t count, int root) override {
    SPPO_CHECK(root == 0, "broadcast: root ", root, " is not a rank of a world of 1");
    require(data, data.dtype, count, "broadcast", "data");
  }
  void barrier() override {}

 private:
  std::shared_ptr<Backend> be_;
};

}  // namespace

std::shared_ptr<Communicator> make_local_communicator(std::shared_ptr<Backend> backend) {
  return std::make_shared<LocalCommunicator>(std::move(backend));
}

}  // namespace sppo
