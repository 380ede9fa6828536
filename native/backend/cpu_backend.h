// The CPU backend: host memory, synchronous ops (the stream is the calling thread), fp32 and fp64
// math (fp64 for the finite-difference tests), OpenMP threads and AVX2/AVX-512 paths chosen at run
// time. Implements backend.h with the kernels in native/kernels/cpu/.
#pragma once
#include <memory>

#include "backend/backend.h"

namespace sppo {

std::shared_ptr<Backend> make_cpu_backend();

}  // namespace sppo
