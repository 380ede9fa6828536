// The host communicator (CONTRACT): data parallelism between CPU processes on one machine, over
// shared memory (comm/shm_group.h). Collectives run in call order on one worker thread per
// communicator (its "stream"), so the trainer's backward continues while buckets are reduced.
// Sums are taken in a fixed order, rank 0 + rank 1 + ... for every element (all_reduce and
// reduce_scatter alike), so a rerun, and ZeRO-1 against plain data parallel, are bitwise equal.
// A rank that dies, stops, hangs past the timeout or calls different collectives ends every
// rank's collectives with a message naming it. Needs a backend whose memory the host can read
// (the CPU backend); reductions in F32, F64 and BF16 (each element summed in fp32 in rank order,
// rounded once: the bf16 gradient arena), gathers and broadcasts of any element type.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "comm/communicator.h"

namespace sppo {

class Backend;

struct HostCommOptions {
  std::string name;    // the group's shared-memory name, from new_host_communicator_name() on rank 0
  int rank = 0, world = 1;
  double timeout_s = 300;
  double heartbeat_s = 10;
  std::size_t slot_bytes = std::size_t{4} << 20;  // per rank; larger collectives go in chunks
};

// Rank 0 creates the group, the others attach; returns once every rank has (or throws naming the
// ranks that did not within the timeout).
std::shared_ptr<Communicator> make_host_communicator(std::shared_ptr<Backend> backend, const HostCommOptions& o);

// A fresh name for a group ("/sppo-<pid>-<random hex>").
std::string new_host_communicator_name();

}  // namespace sppo
