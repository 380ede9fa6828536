// Collectives over ranges of backend memory (CONTRACT): what the trainer calls to combine
// gradients and share weights across data-parallel ranks. Implementations: local (world size 1,
// this file's make_local_communicator), host (CPU processes) and NCCL come with data parallelism.
//   all_reduce:     data[0..count) = sum over ranks, in place
//   reduce_scatter: recv[0..count) = sum over ranks of send[rank * count .. (rank + 1) * count)
//   all_gather:     recv[r * count .. (r + 1) * count) = rank r's send[0..count)
//   broadcast:      data = root's data
// Every rank calls the same collectives in the same order with the same counts. Collectives are
// ordered after the work already queued on the backend's stream.
#pragma once
#include <cstdint>
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
  virtual void barrier() = 0;
};

// World size 1: collectives are identities (reduce_scatter and all_gather copy when the ranges
// differ), so a single-process run goes through the same calls as a distributed one.
std::shared_ptr<Communicator> make_local_communicator(std::shared_ptr<class Backend> backend);

}  // namespace sppo
