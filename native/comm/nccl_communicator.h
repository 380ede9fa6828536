// The NCCL communicator (CONTRACT): data parallelism between GPUs, on one machine or many, through
// NCCL (loaded at run time: runtime/nccl_shim.h). Collectives are queued on the CUDA backend's
// communication stream after the compute queued so far (Backend::comm_after_compute), so bucket
// all-reduces overlap the rest of backward; wait() makes the compute stream wait for them. A
// watchdog thread polls NCCL's asynchronous error and the age of the oldest unfinished
// collective: an error, or a collective older than the timeout (a rank died or hangs), aborts the
// communicator (ncclCommAbort), and every later call throws the reason. NCCL does not say which
// peer failed; the rendezvous store does (src/dist/), and the TypeScript side names it.
#pragma once
#include <array>
#include <memory>
#include <string>

#include "comm/communicator.h"
#include "runtime/nccl_shim.h"

namespace sppo {

class Backend;

struct NcclCommOptions {
  int rank = 0, world = 1;
  nccl::UniqueId id{};     // from new_nccl_id() on rank 0, handed out by the rendezvous
  double timeout_s = 600;  // an unfinished collective older than this aborts the communicator
};

// Needs the CUDA backend and libnccl.so.2; blocks until every rank has joined.
std::shared_ptr<Communicator> make_nccl_communicator(std::shared_ptr<Backend> backend, const NcclCommOptions& o);

// A new communicator id (ncclGetUniqueId: it also starts NCCL's bootstrap listener in this process,
// so rank 0 makes it).
nccl::UniqueId new_nccl_id();

}  // namespace sppo
