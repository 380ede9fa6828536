// The host's available memory (/proc/meminfo MemAvailable; 1 TiB where unknown, so that nothing is
// refused on a guess). The CPU backend's allocator limit and the scheduler's automatic swap space
// (model/scheduler.h) read it.
#pragma once
#include <cstddef>

namespace sppo {

std::size_t host_available_memory();

}  // namespace sppo
