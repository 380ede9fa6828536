// ArenaPlan, Arena and format_bytes (backend/buffer.h).
#include "backend/buffer.h"

#include <cstdio>

namespace sppo {

std::size_t ArenaPlan::add(std::string name, DType dtype, int64_t numel) {
  SPPO_CHECK(numel >= 0, "arena entry '", name, "' has a negative size (", numel, ")");
  const std::size_t offset = (bytes_ + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
  entries_.push_back(ArenaEntry{std::move(name), dtype, numel, offset});
  bytes_ = offset + static_cast<std::size_t>(numel) * dtype_size(dtype);
  return entries_.size() - 1;
}

Arena::Arena(std::shared_ptr<Backend> be, ArenaPlan plan, const std::string& what) : plan_(std::move(plan)) {
  const std::size_t need = plan_.bytes(), have = be->available_memory();
  SPPO_CHECK(need <= have, what, " needs ", format_bytes(static_cast<double>(need)), " but the ", be->name(),
             " backend has ", format_bytes(static_cast<double>(have)), " available");
  buffer_ = Buffer(std::move(be), need);
}

Tensor Arena::operator[](std::size_t i) const {
  SPPO_CHECK(i < plan_.entries().size(), "arena view ", i, " does not exist (", plan_.entries().size(), " views)");
  const ArenaEntry& e = plan_.entries()[i];
  return buffer_.view(e.dtype, e.numel, e.offset);
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

}  // namespace sppo
