// Collectives over ranges of backend memory (CONTRACT): what the trainer calls to combine
// gradients and share weights across data-parallel ranks. Implementations: local (world size 1,
// make_local_communicator below), host (CPU processes on one machine, comm/host_communicator.h)
// and NCCL (GPUs, comm/nccl_communicator.h).
//   all_reduce:     data[0..count) = sum over ranks, in place
//   reduce_scatter: recv[0..count) = sum over ranks of send[rank * count .. (rank + 1) * count)
//   all_gather:     recv[r * count .. (r + 1) * count) = rank r's send[0..count)
//   broadcast:      data = root's data
// In-place forms are allowed as NCCL defines them (reduce_scatter: recv == send + rank * count;
// all_gather: send == recv + rank * count).
//
// Every rank calls the same collectives in the same order with the same counts (the host
// communicator checks this and names the ranks that disagree). Collectives are queued: each runs
// after the work already queued on the backend's stream, in call order, on the communicator's own
// stream or thread, so that compute queued later overlaps it. Their memory must not be touched
// (read or written) until wait() returns, which also orders the backend's stream after them and
// rethrows the first failure. Sums are taken in a fixed order where the implementation can
// promise it (host: rank 0 + rank 1 + ... for every element, so reruns are bitwise equal).
//
// Failures: a rank that died, hangs past the timeout or disagrees makes every rank's pending and
// later collectives throw a message naming it; abort() (thread-safe, from any thread) does the
// same on purpose, and tells the peers where the implementation can.
#pragma once
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace sppo {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual const char* kind() const = 0;

  virtual void all_reduce(const Tensor& data, int64_t count) = 0;
  virtual void reduce_scatter(const Tensor& send, const Tensor& recv, int64_t count) = 0;
  virtual void all_gather(const Tensor& send, const Tensor& recv, int64_t count) = 0;
  virtual void broadcast(const Tensor& data, int64_t count, int root) = 0;
  virtual void wait() = 0;
  // Every rank has reached this point (and its queued collectives are done); waits.
  virtual void barrier() = 0;
  virtual void abort(const std::string& why) = 0;

  // Collectives queued so far; collective i (0-based) finished at finished_at(i) seconds of the
  // steady clock (valid after wait(); NaN where the implementation cannot tell). For overlap
  // measurements.
  virtual int64_t queued() const = 0;
  virtual double finished_at(int64_t) const { return std::numeric_limits<double>::quiet_NaN(); }
};

// Seconds of the steady clock (the clock finished_at() and the trainer's events use).
double steady_seconds();

// World size 1: collectives are identities (reduce_scatter and all_gather copy when the ranges
// differ), so a single-process run goes through the same calls as a distributed one.
std::shared_ptr<Communicator> make_local_communicator(std::shared_ptr<class Backend> backend);

}  // namespace sppo
