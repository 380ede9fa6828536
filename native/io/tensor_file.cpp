#include "io/tensor_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace sppo::io {

namespace {

constexpr uint64_t kChunkBytes = 8ull << 20;  // staging buffer for conversions

std::string errno_text() { return std::strerror(errno); }

// Closes the descriptor on every path out (errors included).
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

void pread_all(int fd, void* buf, uint64_t n, uint64_t offset, const std::string& path) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, static_cast<size_t>(std::min<uint64_t>(n, 1ull << 30)), static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(path, ": read failed: ", errno_text());
    if (r == 0) fail(path, ": unexpected end of file at byte ", offset);
    p += r;
    n -= static_cast<uint64_t>(r);
    offset += static_cast<uint64_t>(r);
  }
}

void write_all(int fd, const void* buf, uint64_t n, const std::string& path) {
  const auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t w = ::write(fd, p, static_cast<size_t>(std::min<uint64_t>(n, 1ull << 30)));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail(path, ": write failed: ", errno_text());
    p += w;
    n -= static_cast<uint64_t>(w);
  }
}

std::string parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

DType parse_tensor_dtype(const std::string& name, const std::string& what) {
  if (name == "F32") return DType::F32;
  if (name == "BF16") return DType::BF16;
  if (name == "F16") return DType::F16;
  fail(what, ": unsupported dtype '", name, "' (expected F32, BF16 or F16)");
}

void read_tensor(const std::string& path, uint64_t offset, uint64_t nbytes, DType dtype, float* dst,
                 int64_t numel, const std::string& what) {
  SPPO_CHECK(dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16, path, ": tensor '", what,
             "': unsupported dtype ", dtype_name(dtype));
  SPPO_CHECK(numel >= 0, path, ": tensor '", what, "': negative element count");
  const uint64_t esize = dtype_size(dtype);
  SPPO_CHECK(nbytes / esize == static_cast<uint64_t>(numel) && nbytes % esize == 0, path, ": tensor '", what,
             "' has ", nbytes, " bytes but the parameter needs ", numel, " x ", esize, " bytes (", dtype_name(dtype),
             ")");
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) fail(path, ": cannot open: ", errno_text());
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) fail(path, ": cannot stat: ", errno_text());
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  SPPO_CHECK(offset <= size && nbytes <= size - offset, path, ": tensor '", what, "' byte range [", offset, ", ",
             offset + nbytes, ") lies outside the file (", size, " bytes): truncated or corrupt file");
  if (nbytes == 0) return;
  if (dtype == DType::F32) {
    // safetensors is little-endian, as is every platform this builds for.
    pread_all(f.fd, dst, nbytes, offset, path);
    return;
  }
  std::vector<uint16_t> stage(static_cast<size_t>(std::min<uint64_t>(nbytes, kChunkBytes) / 2));
  uint64_t done = 0;
  while (done < nbytes) {
    const uint64_t n = std::min<uint64_t>(nbytes - done, stage.size() * 2);
    pread_all(f.fd, stage.data(), n, offset + done, path);
    float* out = dst + done / 2;
    const size_t count = static_cast<size_t>(n / 2);
    if (dtype == DType::BF16) {
      for (size_t i = 0; i < count; ++i) out[i] = bf16_to_f32(stage[i]);
    } else {
      for (size_t i = 0; i < count; ++i) out[i] = f16_to_f32(stage[i]);
    }
    done += n;
  }
}

void write_safetensors(const std::string& path, const std::string& header_json,
                       const std::vector<TensorSource>& tensors, DType dtype, uint64_t expected_data_bytes) {
  SPPO_CHECK(dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16, path,
             ": cannot write dtype ", dtype_name(dtype));
  SPPO_CHECK(!header_json.empty() && header_json.front() == '{', path, ": header must be a JSON object");
  const uint64_t esize = dtype_size(dtype);
  uint64_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    SPPO_CHECK(tensors[i].numel >= 0 && (tensors[i].data != nullptr || tensors[i].numel == 0), path,
               ": tensor #", i, " has no data");
    total += static_cast<uint64_t>(tensors[i].numel) * esize;
  }
  SPPO_CHECK(total == expected_data_bytes, path, ": the header describes ", expected_data_bytes,
             " data bytes but the tensors hold ", total);

  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  Fd f;
  f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f.fd < 0) fail(tmp, ": cannot create: ", errno_text());
  try {
    unsigned char len[8];
    uint64_t n = header_json.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xffu);
    write_all(f.fd, len, 8, tmp);
    write_all(f.fd, header_json.data(), n, tmp);
    std::vector<uint16_t> stage;
    for (const auto& t : tensors) {
      if (dtype == DType::F32) {
        write_all(f.fd, t.data, static_cast<uint64_t>(t.numel) * 4, tmp);
        continue;
      }
      const int64_t chunk = static_cast<int64_t>(kChunkBytes / 2);
      stage.resize(static_cast<size_t>(std::min<int64_t>(t.numel, chunk)));
      for (int64_t s = 0; s < t.numel; s += chunk) {
        const int64_t m = std::min<int64_t>(chunk, t.numel - s);
        if (dtype == DType::BF16) {
          for (int64_t i = 0; i < m; ++i) stage[static_cast<size_t>(i)] = f32_to_bf16(t.data[s + i]);
        } else {
          for (int64_t i = 0; i < m; ++i) stage[static_cast<size_t>(i)] = f32_to_f16(t.data[s + i]);
        }
        write_all(f.fd, stage.data(), static_cast<uint64_t>(m) * 2, tmp);
      }
    }
    if (::fsync(f.fd) != 0) fail(tmp, ": fsync failed: ", errno_text());
    ::close(f.fd);
    f.fd = -1;
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail(path, ": cannot rename from ", tmp, ": ", errno_text());
  } catch (...) {
    if (f.fd >= 0) {
      ::close(f.fd);
      f.fd = -1;
    }
    ::unlink(tmp.c_str());
    throw;
  }
  // Make the rename itself durable.
  Fd dir;
  dir.fd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir.fd >= 0) ::fsync(dir.fd);
}

}  // namespace sppo::io
