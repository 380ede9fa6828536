// The CPU backend: host memory, synchronous ops (the stream is the calling thread), fp32 and fp64
// math (fp64 for the finite-difference tests), bf16 emulated (BF16 tensors widened to fp32 for the
// fp32 kernels, outputs rounded once: half_emulation.h), OpenMP threads and AVX2/AVX-512 paths
// chosen at run time. Implements backend.h with the kernels in native/kernels/cpu/.
#pragma once
#include <cstddef>
#include <memory>

#include "backend/backend.h"

namespace sppo {

std::shared_ptr<Backend> make_cpu_backend();

// The bytes a counting CPU backend has handed out: now, and at most so far.
struct HostMemoryCount {
  std::size_t in_use = 0, peak = 0;
};

// A CPU backend (not the shared one) that counts its allocations into `count` and, with limit > 0,
// reports at most `limit` minus what it holds as available and refuses allocations past it: how
// the tests check that the memory planner equals what the engine allocates, and that a plan that
// does not fit is refused before anything is allocated.
std::shared_ptr<Backend> make_counting_cpu_backend(std::shared_ptr<HostMemoryCount> count, std::size_t limit = 0);

}  // namespace sppo
