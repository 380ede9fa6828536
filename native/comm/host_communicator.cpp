// HostCommunicator (comm/host_communicator.h): collectives as phases of a ShmGroup, run by one
// worker thread in call order.
#include "comm/host_communicator.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "backend/backend.h"
#include "comm/finish_times.h"
#include "comm/shm_group.h"
#include "core/error.h"

namespace sppo {
namespace {

using comm::OpDesc;
using comm::OpKind;

template <typename T>
void reduce_into(T* out, unsigned char* const* slots, int world, std::size_t offset, std::size_t n) {
  const T* first = reinterpret_cast<const T*>(slots[0]) + offset;
  for (std::size_t i = 0; i < n; ++i) {
    T acc = first[i];
    for (int r = 1; r < world; ++r) acc += reinterpret_cast<const T*>(slots[r])[offset + i];  // rank order, always
    out[i] = acc;
  }
}

// BF16 (the bf16 gradient arena): each element summed in fp32 in rank order from the widened
// values, rounded once: the same bits on every rank and every run.
void reduce_bf16_into(uint16_t* out, unsigned char* const* slots, int world, std::size_t offset, std::size_t n) {
  const uint16_t* first = reinterpret_cast<const uint16_t*>(slots[0]) + offset;
  for (std::size_t i = 0; i < n; ++i) {
    float acc = bf16_to_f32(first[i]);
    for (int r = 1; r < world; ++r) acc += bf16_to_f32(reinterpret_cast<const uint16_t*>(slots[r])[offset + i]);
    out[i] = f32_to_bf16(acc);
  }
}

// out[0, n) = the sum over ranks of slots[r][offset, offset + n), in `t` (checked: F32, F64, BF16).
void reduce_typed(DType t, unsigned char* out, unsigned char* const* slots, int world, std::size_t offset,
                  std::size_t n) {
  if (t == DType::F32) reduce_into(reinterpret_cast<float*>(out), slots, world, offset, n);
  else if (t == DType::F64) reduce_into(reinterpret_cast<double*>(out), slots, world, offset, n);
  else reduce_bf16_into(reinterpret_cast<uint16_t*>(out), slots, world, offset, n);
}

class HostCommunicator final : public Communicator {
 public:
  HostCommunicator(std::shared_ptr<Backend> be, const HostCommOptions& o) : be_(std::move(be)) {
    SPPO_CHECK(be_ && be_->host_accessible(), "the host communicator needs the CPU backend (got ",
               be_ ? be_->name() : "none", "); GPUs use the NCCL communicator");
    comm::ShmGroupOptions g;
    g.name = o.name;
    g.rank = o.rank;
    g.world = o.world;
    g.slot_bytes = o.slot_bytes;
    g.timeout_s = o.timeout_s;
    g.heartbeat_s = o.heartbeat_s;
    group_ = std::make_unique<comm::ShmGroup>(g);
    for (int r = 0; r < o.world; ++r) slots_.push_back(group_->slot(r));
    worker_ = std::thread([this] { run(); });
  }
  ~HostCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }

  int rank() const override { return group_->rank(); }
  int world_size() const override { return group_->world(); }
  const char* kind() const override { return "host"; }

  void all_reduce(const Tensor& data, int64_t count) override {
    require(data, data.dtype, count, "all_reduce", "data");
    check_sum_type(data.dtype, "all_reduce");
    enqueue({OpKind::AllReduce, static_cast<uint32_t>(data.dtype), count, -1}, [this, data, count](const OpDesc&) {
      do_all_reduce(data, count);
    });
  }
  void reduce_scatter(const Tensor& send, const Tensor& recv, int64_t count) override {
    require(send, send.dtype, count * world_size(), "reduce_scatter", "send");
    require(recv, send.dtype, count, "reduce_scatter", "recv");
    check_sum_type(send.dtype, "reduce_scatter");
    const auto* s = static_cast<const unsigned char*>(send.data);
    const auto* r = static_cast<const unsigned char*>(recv.data);
    const std::size_t es = dtype_size(send.dtype), part = static_cast<std::size_t>(count) * es;
    SPPO_CHECK(r == s + part * static_cast<std::size_t>(rank()) || r + part <= s ||
                   r >= s + part * static_cast<std::size_t>(world_size()),
               "reduce_scatter: recv overlaps send other than in place (recv = send + rank * count)");
    enqueue({OpKind::ReduceScatter, static_cast<uint32_t>(send.dtype), count, -1},
            [this, send, recv, count](const OpDesc&) { do_reduce_scatter(send, recv, count); });
  }
  void all_gather(const Tensor& send, const Tensor& recv, int64_t count) override {
    require(send, send.dtype, count, "all_gather", "send");
    require(recv, send.dtype, count * world_size(), "all_gather", "recv");
    const auto* s = static_cast<const unsigned char*>(send.data);
    const auto* r = static_cast<const unsigned char*>(recv.data);
    const std::size_t part = static_cast<std::size_t>(count) * dtype_size(send.dtype);
    SPPO_CHECK(s == r + part * static_cast<std::size_t>(rank()) || s + part <= r ||
                   s >= r + part * static_cast<std::size_t>(world_size()),
               "all_gather: send overlaps recv other than in place (send = recv + rank * count)");
    enqueue({OpKind::AllGather, static_cast<uint32_t>(send.dtype), count, -1},
            [this, send, recv, count](const OpDesc&) { do_all_gather(send, recv, count); });
  }
  void broadcast(const Tensor& data, int64_t count, int root) override {
    SPPO_CHECK(root >= 0 && root < world_size(), "broadcast: root ", root, " is not a rank of a world of ", world_size());
    require(data, data.dtype, count, "broadcast", "data");
    enqueue({OpKind::Broadcast, static_cast<uint32_t>(data.dtype), count, root},
            [this, data, count, root](const OpDesc&) { do_broadcast(data, count, root); });
  }
  void wait() override {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [this] { return jobs_.empty() && !busy_; });
    if (!error_.empty()) throw Error(error_);
  }
  void barrier() override {
    enqueue({OpKind::Barrier, 0, 0, -1}, [](const OpDesc&) {});
    wait();
  }
  void abort(const std::string& why) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (error_.empty()) error_ = why.empty() ? "aborted" : why;
    }
    group_->abort(why.empty() ? "aborted" : why);  // the worker's wait, and every peer's, end with it
    idle_.notify_all();
  }
  int64_t queued() const override { return times_.queued(); }
  double finished_at(int64_t op) const override { return times_.at(op); }

 private:
  struct Job {
    int64_t op;
    OpDesc desc;
    std::function<void(const OpDesc&)> fn;
  };

  static void check_sum_type(DType t, const char* op) {
    SPPO_CHECK(t == DType::F32 || t == DType::F64 || t == DType::BF16, op,
               ": the host communicator sums F32, F64 or BF16 (got ", dtype_name(t), ")");
  }

  void enqueue(const OpDesc& d, std::function<void(const OpDesc&)> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_.empty()) throw Error(error_);
    jobs_.push_back(Job{times_.queue(), d, std::move(fn)});
    cv_.notify_all();
  }

  void run() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping
        job = std::move(jobs_.front());
        jobs_.pop_front();
        busy_ = true;
        if (!error_.empty()) {  // a failed communicator runs nothing more
          busy_ = false;
          idle_.notify_all();
          continue;
        }
      }
      std::string failed;
      try {
        group_->begin(job.op, comm::op_kind_name(job.desc.kind), job.desc);
        job.fn(job.desc);
        times_.finish(job.op, steady_seconds());
      } catch (const std::exception& e) {
        failed = e.what();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!failed.empty() && error_.empty()) error_ = failed;
        busy_ = false;
      }
      idle_.notify_all();
    }
  }

  std::size_t chunk_elems(std::size_t es, int parts) const {
    return std::max<std::size_t>(1, group_->slot_bytes() / (es * static_cast<std::size_t>(parts)));
  }

  void do_all_reduce(const Tensor& data, int64_t count) {
    const std::size_t es = dtype_size(data.dtype), m = chunk_elems(es, 1), W = static_cast<std::size_t>(world_size());
    const std::size_t me = static_cast<std::size_t>(rank());
    auto* base = static_cast<unsigned char*>(data.data);
    for (std::size_t a = 0; a < static_cast<std::size_t>(count); a += m) {
      const std::size_t n = std::min(m, static_cast<std::size_t>(count) - a);
      std::memcpy(slots_[me], base + a * es, n * es);
      group_->phase();
      // Each rank sums its share of the chunk (in rank order) into its own slot...
      const std::size_t lo = n * me / W, hi = n * (me + 1) / W;
      reduce_typed(data.dtype, slots_[me] + lo * es, slots_.data(), world_size(), lo, hi - lo);
      group_->phase();
      // ...and every rank copies every share out.
      for (std::size_t q = 0; q < W; ++q) {
        const std::size_t ql = n * q / W, qh = n * (q + 1) / W;
        std::memcpy(base + (a + ql) * es, slots_[q] + ql * es, (qh - ql) * es);
      }
      group_->phase();
    }
  }

  void do_reduce_scatter(const Tensor& send, const Tensor& recv, int64_t count) {
    const std::size_t es = dtype_size(send.dtype), W = static_cast<std::size_t>(world_size()), m = chunk_elems(es, world_size());
    const std::size_t me = static_cast<std::size_t>(rank()), c = static_cast<std::size_t>(count);
    const auto* s = static_cast<const unsigned char*>(send.data);
    auto* out = static_cast<unsigned char*>(recv.data);
    for (std::size_t a = 0; a < c; a += m) {
      const std::size_t n = std::min(m, c - a);
      for (std::size_t q = 0; q < W; ++q) std::memcpy(slots_[me] + q * n * es, s + (q * c + a) * es, n * es);
      group_->phase();
      reduce_typed(send.dtype, out + a * es, slots_.data(), world_size(), me * n, n);
      group_->phase();
    }
  }

  void do_all_gather(const Tensor& send, const Tensor& recv, int64_t count) {
    const std::size_t es = dtype_size(send.dtype), m = chunk_elems(es, 1), c = static_cast<std::size_t>(count);
    const auto* s = static_cast<const unsigned char*>(send.data);
    auto* out = static_cast<unsigned char*>(recv.data);
    const std::size_t me = static_cast<std::size_t>(rank());
    for (std::size_t a = 0; a < c; a += m) {
      const std::size_t n = std::min(m, c - a);
      std::memcpy(slots_[me], s + a * es, n * es);
      group_->phase();
      for (std::size_t r = 0; r < static_cast<std::size_t>(world_size()); ++r)
        std::memcpy(out + (r * c + a) * es, slots_[r], n * es);
      group_->phase();
    }
  }

  void do_broadcast(const Tensor& data, int64_t count, int root) {
    const std::size_t es = dtype_size(data.dtype), m = chunk_elems(es, 1), c = static_cast<std::size_t>(count);
    auto* base = static_cast<unsigned char*>(data.data);
    for (std::size_t a = 0; a < c; a += m) {
      const std::size_t n = std::min(m, c - a);
      if (rank() == root) std::memcpy(slots_[static_cast<size_t>(root)], base + a * es, n * es);
      group_->phase();
      if (rank() != root) std::memcpy(base + a * es, slots_[static_cast<size_t>(root)], n * es);
      group_->phase();
    }
  }

  std::shared_ptr<Backend> be_;
  std::unique_ptr<comm::ShmGroup> group_;
  std::vector<unsigned char*> slots_;
  comm::FinishTimes times_;
  std::mutex mu_;
  std::condition_variable cv_, idle_;
  std::deque<Job> jobs_;
  bool busy_ = false, stop_ = false;
  std::string error_;
  std::thread worker_;
};

}  // namespace

std::shared_ptr<Communicator> make_host_communicator(std::shared_ptr<Backend> backend, const HostCommOptions& o) {
  return std::make_shared<HostCommunicator>(std::move(backend), o);
}

std::string new_host_communicator_name() {
  std::random_device rd;
  std::ostringstream os;
  os << "/sppo-" << getpid() << "-" << std::hex << rd() << rd();
  return os.str();
}

}  // namespace sppo
