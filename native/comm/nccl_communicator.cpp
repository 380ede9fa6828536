// NcclCommunicator (comm/nccl_communicator.h). Compiled in every build: the CUDA parts are the
// backend's (its streams) and NCCL's (loaded at run time), so this file needs neither header.
#include "comm/nccl_communicator.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <thread>

#include "backend/backend.h"
#include "core/device.h"
#include "core/error.h"

namespace sppo {
namespace {

nccl::DataType nccl_type(DType t, const char* op) {
  switch (t) {
    case DType::F32: return nccl::Float32;
    case DType::F64: return nccl::Float64;
    case DType::BF16: return nccl::Bfloat16;
    case DType::F16: return nccl::Float16;
    case DType::I32: return nccl::Int32;
    case DType::U8: return nccl::Uint8;
  }
  fail(op, ": no NCCL type for ", dtype_name(t));
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::shared_ptr<Backend> be, const NcclCommOptions& o)
      : be_(std::move(be)), api_(nccl::api()), rank_(o.rank), world_(o.world), timeout_s_(o.timeout_s) {
    SPPO_CHECK(be_ && be_->device() == Device::CUDA, "the NCCL communicator needs the CUDA backend (got ",
               be_ ? be_->name() : "none", "); CPU ranks use the host communicator");
    SPPO_CHECK(o.world >= 1 && o.rank >= 0 && o.rank < o.world, "NCCL communicator: rank ", o.rank, " is not in [0, ", o.world, ")");
    SPPO_CHECK(o.timeout_s > 0, "NCCL communicator: the timeout must be > 0");
    stream_ = be_->comm_stream();
    nccl::Comm c = nullptr;
    nccl::check(api_.CommInitRank(&c, o.world, o.id, o.rank), "ncclCommInitRank");
    comm_ = c;
    scratch_ = be_->allocate(sizeof(float));
    be_->zero(scratch_, sizeof(float));
    watchdog_ = std::thread([this] { watch(); });
  }
  ~NcclCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
    std::lock_guard<std::mutex> lock(mu_);
    if (comm_) {
      // Finished work first; a communicator that failed is aborted instead (destroy would hang),
      // as is one whose stream cannot be queried (a broken CUDA context: nothing may throw here).
      if (error_.empty() && idle_or_broken() == Idle::Yes) api_.CommDestroy(comm_);
      else api_.CommAbort(comm_);
      comm_ = nullptr;
    }
    if (scratch_) be_->deallocate(scratch_);
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  const char* kind() const override { return "nccl"; }

  void all_reduce(const Tensor& data, int64_t count) override {
    require(data, data.dtype, count, "all_reduce", "data");
    const nccl::DataType t = nccl_type(data.dtype, "all_reduce");
    queue("all_reduce", count, [&](nccl::Comm c) {
      return api_.AllReduce(data.data, data.data, static_cast<std::size_t>(count), t, nccl::Sum, c, stream_);
    });
  }
  void reduce_scatter(const Tensor& send, const Tensor& recv, int64_t count) override {
    require(send, send.dtype, count * world_, "reduce_scatter", "send");
    require(recv, send.dtype, count, "reduce_scatter", "recv");
    const nccl::DataType t = nccl_type(send.dtype, "reduce_scatter");
    queue("reduce_scatter", count, [&](nccl::Comm c) {
      return api_.ReduceScatter(send.data, recv.data, static_cast<std::size_t>(count), t, nccl::Sum, c, stream_);
    });
  }
  void all_gather(const Tensor& send, const Tensor& recv, int64_t count) override {
    require(send, send.dtype, count, "all_gather", "send");
    require(recv, send.dtype, count * world_, "all_gather", "recv");
    const nccl::DataType t = nccl_type(send.dtype, "all_gather");
    queue("all_gather", count, [&](nccl::Comm c) {
      return api_.AllGather(send.data, recv.data, static_cast<std::size_t>(count), t, c, stream_);
    });
  }
  void broadcast(const Tensor& data, int64_t count, int root) override {
    SPPO_CHECK(root >= 0 && root < world_, "broadcast: root ", root, " is not a rank of a world of ", world_);
    require(data, data.dtype, count, "broadcast", "data");
    const nccl::DataType t = nccl_type(data.dtype, "broadcast");
    queue("broadcast", count, [&](nccl::Comm c) {
      return api_.Broadcast(data.data, data.data, static_cast<std::size_t>(count), t, root, c, stream_);
    });
  }
  void wait() override {
    raise_if_failed();
    be_->compute_after_comm();
  }
  void barrier() override {
    queue("barrier", 1, [&](nccl::Comm c) {
      return api_.AllReduce(scratch_, scratch_, 1, nccl::Float32, nccl::Sum, c, stream_);
    });
    // Waits on the host, polling, so that the watchdog's abort ends the wait too.
    while (!be_->comm_idle()) {
      raise_if_failed();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    raise_if_failed();
  }
  void abort(const std::string& why) override { abort_with(why.empty() ? "aborted" : why); }
  int64_t queued() const override { return queued_.load(); }

 private:
  template <typename Call>
  void queue(const char* what, int64_t count, Call call) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_.empty()) throw Error(error_);
    be_->comm_after_compute();
    const nccl::Result r = call(comm_);
    if (r != nccl::Success && r != nccl::InProgress) {
      std::ostringstream os;
      os << "NCCL " << what << " of " << count << " elements failed on rank " << rank_ << ": " << api_.GetErrorString(r);
      error_ = os.str();
      // The collectives queued before it may still run: abort them, so that nothing (a free of
      // the buffers they use, a wait) waits on a communicator that can make no progress.
      api_.CommAbort(comm_);
      comm_ = nullptr;
      throw Error(error_);
    }
    if (pending_since_ < 0) pending_since_ = steady_seconds();
    last_what_ = what;
    ++queued_;
  }

  void raise_if_failed() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_.empty()) throw Error(error_);
  }

  void abort_with(const std::string& why) {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_.empty()) error_ = why;
    if (comm_) {
      api_.CommAbort(comm_);  // ends kernels stuck waiting for a peer
      comm_ = nullptr;
    }
  }

  // The communication stream's state without throwing: a CUDA error (a fault on this device
  // breaks the context; the query then fails) comes back as Broken with its message in *why.
  enum class Idle { Yes, No, Broken };
  Idle idle_or_broken(std::string* why = nullptr) {
    try {
      return be_->comm_idle() ? Idle::Yes : Idle::No;
    } catch (const std::exception& e) {
      if (why) *why = std::string("the CUDA device failed on rank ") + std::to_string(rank_) + ": " + e.what();
      return Idle::Broken;
    }
  }

  void watch() {
    bind_thread_to_device();
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(100));
      if (stop_ || !comm_ || !error_.empty()) continue;
      nccl::Result async = nccl::Success;
      api_.CommGetAsyncError(comm_, &async);
      std::string why;
      if (async != nccl::Success && async != nccl::InProgress) {
        std::ostringstream os;
        os << "NCCL reported an error on rank " << rank_ << ": " << api_.GetErrorString(async)
           << " (a peer died, or the network failed; the other ranks' messages name it)";
        why = os.str();
      } else if (pending_since_ >= 0) {
        const Idle idle = idle_or_broken(&why);
        if (idle == Idle::Yes) {
          pending_since_ = -1;
        } else if (idle == Idle::Broken) {
          // why says it: an exception must not leave this thread (it would end the process)
        } else if (steady_seconds() - pending_since_ > timeout_s_) {
          std::ostringstream os;
          os << "NCCL " << last_what_ << " (collective #" << queued_.load() - 1 << ") did not finish within " << timeout_s_
             << " s on rank " << rank_ << " (a rank died or hangs; --dist-timeout sets the limit)";
          why = os.str();
        }
      }
      if (!why.empty()) {
        error_ = why;
        api_.CommAbort(comm_);
        comm_ = nullptr;
      }
    }
  }

  std::shared_ptr<Backend> be_;
  const nccl::Api& api_;
  int rank_, world_;
  double timeout_s_;
  void* stream_ = nullptr;
  void* scratch_ = nullptr;
  nccl::Comm comm_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::string error_;
  double pending_since_ = -1;  // when the oldest collective not known to be finished was queued
  std::string last_what_;
  std::atomic<int64_t> queued_{0};
  std::thread watchdog_;
};

}  // namespace

std::shared_ptr<Communicator> make_nccl_communicator(std::shared_ptr<Backend> backend, const NcclCommOptions& o) {
  return std::make_shared<NcclCommunicator>(std::move(backend), o);
}

nccl::UniqueId new_nccl_id() {
  nccl::UniqueId id{};
  nccl::check(nccl::api().GetUniqueId(&id), "ncclGetUniqueId");
  return id;
}

}  // namespace sppo
