// host_available_memory (core/host_memory.h).
#include "core/host_memory.h"

#include <fstream>
#include <string>

namespace sppo {

std::size_t host_available_memory() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  std::size_t kb = 0;
  while (f >> key >> kb) {
    if (key == "MemAvailable:") return kb * 1024;
    f.ignore(256, '\n');
  }
  return static_cast<std::size_t>(1) << 40;  // unknown: do not refuse
}

}  // namespace sppo
