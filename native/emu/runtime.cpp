// The CUDA emulator's runtime (emu/cuda_emu_runtime.h): memory, streams as queues, events,
// capture into graphs, launch checks. One lock for all of it; queued work runs on the host thread
// that waits for it.
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "emu/cuda_emu_runtime.h"

struct CUgraph_st {
  std::vector<std::function<void()>> ops;
  std::vector<void*> owned;  // cudaMallocAsync'd inside the capture: alive as long as the graph
};
struct CUgraphExec_st {
  std::shared_ptr<CUgraph_st> graph;
};
struct CUevent_st {
  bool timing = true;
  bool recorded = false;
  CUstream_st* stream = nullptr;  // where the pending record is queued
  uint64_t seq = 0;               // the record's position in it
  bool done = false;
  std::chrono::steady_clock::time_point at{};
};
struct CUstream_st {
  struct Op {
    uint64_t seq;
    std::function<void()> work;
  };
  std::deque<Op> queue;
  uint64_t next_seq = 1;
  // Capture.
  CUgraph_st* capture = nullptr;
  bool capture_invalid = false;
  std::string capture_why;
  std::thread::id capture_thread;
};
struct CUmemPoolHandle_st {
  int device = 0;
};

namespace sppo_emu {
namespace {

enum class Space { Device, Pinned };
struct Alloc {
  std::size_t bytes;
  Space space;
  bool pooled = false;  // from cudaMallocAsync (the default pool)
};

std::recursive_mutex g_mu;
std::map<uintptr_t, Alloc> g_allocs;
std::size_t g_device_bytes = 0;
std::set<CUstream_st*> g_streams;
std::map<const void*, int> g_smem_optin;  // kernel -> cudaFuncAttributeMaxDynamicSharedMemorySize
thread_local cudaError_t t_last = cudaSuccess;
// A fault that broke the context (fault_when_run): CUDA's sticky errors. Every call from then on
// returns it, and no queued work runs.
cudaError_t g_broken = cudaSuccess;
thread_local CUstream_st* t_capturing = nullptr;  // this thread's capture (thread-local mode)
CUmemPoolHandle_st g_pool;
// The default pool as CUDA keeps it: bytes freed with cudaFreeAsync stay reserved (counted as used
// device memory, invisible to cudaMalloc) up to the release threshold, until cudaMemPoolTrimTo;
// cudaMallocAsync takes them first.
std::size_t g_pool_used = 0, g_pool_idle = 0;
uint64_t g_pool_threshold = 0;

constexpr std::size_t kDefaultSmem = 48 << 10;
constexpr std::size_t kMaxSmemOptin = 232448;  // H100 / H200: 227 KiB

std::size_t total_memory() { return static_cast<std::size_t>(env_number("SPPO_EMU_MEMORY_GIB", 16, 1, 1 << 20)) << 30; }
int sm_count() { return static_cast<int>(env_number("SPPO_EMU_SMS", 132, 1, 1024)); }

cudaError_t set(cudaError_t e) {
  if (e != cudaSuccess) t_last = e;
  return e;
}
// The fault, as the result of a call made after it (cudaSuccess while the context is sound).
cudaError_t broken() { return g_broken == cudaSuccess ? cudaSuccess : set(g_broken); }

void complain(const std::string& what) {
  std::fprintf(stderr, "sppo CUDA emulator: %s\n", what.c_str());
  std::fflush(stderr);
}

// The allocation holding [p, p + bytes), or null.
const Alloc* find(const void* p, std::size_t bytes, uintptr_t* base = nullptr) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs.upper_bound(a);
  if (it == g_allocs.begin()) return nullptr;
  --it;
  if (a + bytes > it->first + it->second.bytes || a < it->first) return nullptr;
  if (base) *base = it->first;
  return &it->second;
}
bool is_device(const void* p, std::size_t bytes) {
  const Alloc* a = find(p, bytes ? bytes : 1);
  return a && a->space == Space::Device;
}
bool is_pinned(const void* p, std::size_t bytes) {
  const Alloc* a = find(p, bytes ? bytes : 1);
  return a && a->space == Space::Pinned;
}
bool touches_device(const void* p) {
  const Alloc* a = find(p, 1);
  return a && a->space == Space::Device;
}

// A call that must not happen while this thread captures: fails the capture, as CUDA does.
bool refused_in_capture(const char* what) {
  CUstream_st* s = t_capturing;
  if (!s) return false;
  if (!s->capture_invalid) {
    s->capture_invalid = true;
    s->capture_why = std::string(what) + " during stream capture";
  }
  set(cudaErrorStreamCaptureUnsupported);
  return true;
}

void run_until(CUstream_st* s, uint64_t seq) {
  while (!s->queue.empty() && s->queue.front().seq <= seq) {
    if (g_broken != cudaSuccess) {  // a broken context runs nothing more
      s->queue.clear();
      return;
    }
    CUstream_st::Op op = std::move(s->queue.front());
    s->queue.pop_front();
    op.work();
  }
}
void run_all(CUstream_st* s) { run_until(s, ~uint64_t{0}); }
void run_everything() {
  for (CUstream_st* s : g_streams) run_all(s);
}

void* allocate(std::size_t bytes, Space space, bool pooled = false) {
  void* p = nullptr;
  // posix_memalign: a sanitizer build tracks the exact size (cudaMalloc aligns to 256 bytes).
  if (posix_memalign(&p, 256, bytes ? bytes : 1) != 0) return nullptr;
  if (space == Space::Device) std::memset(p, 0xff, bytes);  // uninitialised device memory reads as NaN
  g_allocs[reinterpret_cast<uintptr_t>(p)] = {bytes, space, pooled};
  if (space == Space::Device) {
    // A pooled allocation takes the pool's idle bytes first (already counted as used).
    const std::size_t reuse = pooled ? std::min(g_pool_idle, bytes) : 0;
    g_pool_idle -= reuse;
    g_device_bytes += bytes - reuse;
    if (pooled) g_pool_used += bytes;
  }
  return p;
}
cudaError_t release(void* p, Space space, const char* what) {
  if (!p) return cudaSuccess;
  auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_allocs.end() || it->second.space != space) {
    complain(std::string(what) + " of a pointer that is not the start of a live " +
             (space == Space::Device ? "device" : "pinned host") + " allocation");
    return set(cudaErrorInvalidValue);
  }
  if (space == Space::Device && it->second.pooled) {
    // Back to the pool: kept up to the release threshold (the emulator releases at the free, CUDA
    // at the next synchronisation).
    g_pool_used -= it->second.bytes;
    g_pool_idle += it->second.bytes;
    const std::size_t keep = static_cast<std::size_t>(std::min<uint64_t>(g_pool_threshold, SIZE_MAX));
    if (g_pool_idle > keep) {
      g_device_bytes -= g_pool_idle - keep;
      g_pool_idle = keep;
    }
  } else if (space == Space::Device) {
    g_device_bytes -= it->second.bytes;
  }
  g_allocs.erase(it);
  std::free(p);
  return cudaSuccess;
}

bool valid_stream(cudaStream_t s) { return s == nullptr || g_streams.count(s) != 0; }

// Checks a copy's pointers against its kind (cudaMemcpyDefault: any).
bool copy_sides_ok(void* dst, const void* src, std::size_t n, cudaMemcpyKind k, const char* what) {
  if (n == 0) return true;
  const bool dd = is_device(dst, n), sd = is_device(src, n);
  const bool dst_any = touches_device(dst), src_any = touches_device(src);
  std::string bad;
  switch (k) {
    case cudaMemcpyHostToDevice:
      if (!dd) bad = "destination is not inside one device allocation";
      else if (src_any) bad = "source is device memory";
      break;
    case cudaMemcpyDeviceToHost:
      if (!sd) bad = "source is not inside one device allocation";
      else if (dst_any) bad = "destination is device memory";
      break;
    case cudaMemcpyDeviceToDevice:
      if (!dd || !sd) bad = "a side is not inside one device allocation";
      break;
    case cudaMemcpyHostToHost:
      if (dst_any || src_any) bad = "a side is device memory";
      break;
    case cudaMemcpyDefault:
      if ((dst_any && !dd) || (src_any && !sd)) bad = "a side runs past the end of its device allocation";
      break;
  }
  if (bad.empty()) return true;
  complain(std::string(what) + " of " + std::to_string(n) + " bytes: " + bad);
  return false;
}

}  // namespace

uint64_t env_number(const char* name, uint64_t dflt, uint64_t min, uint64_t max) {
  const char* e = std::getenv(name);
  if (!e || !*e) return dflt;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(e, &end, 10);
  if (errno || *end || e[0] == '-' || v < min || v > max) {
    std::fprintf(stderr, "sppo CUDA emulator: %s='%s' is not a whole number from %llu to %llu\n", name, e,
                 static_cast<unsigned long long>(min), static_cast<unsigned long long>(max));
    std::exit(2);
  }
  return v;
}

cudaError_t enqueue(cudaStream_t s, const char* what, std::function<void()> work) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (broken()) return g_broken;
  if (!valid_stream(s)) {
    complain(std::string(what) + " on a stream that does not exist");
    return set(cudaErrorInvalidResourceHandle);
  }
  if (s == nullptr) {
    if (refused_in_capture(what)) return cudaErrorStreamCaptureUnsupported;
    run_everything();
    if (broken()) return g_broken;
    work();
    return broken();
  }
  if (s->capture) {
    if (t_capturing != s) {
      complain(std::string(what) + " queued from another thread on a stream being captured");
      return set(cudaErrorStreamCaptureWrongThread);
    }
    s->capture->ops.push_back(std::move(work));
    return cudaSuccess;
  }
  s->queue.push_back({s->next_seq++, std::move(work)});
  return cudaSuccess;
}

cudaError_t fault_when_run(cudaStream_t s, cudaError_t e) {
  return enqueue(s, "a fault", [e]() { g_broken = e; });
}

cudaError_t func_set_attribute(const void* fn, cudaFuncAttribute a, int value) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (a != cudaFuncAttributeMaxDynamicSharedMemorySize) return set(cudaErrorInvalidValue);
  if (value < 0 || static_cast<std::size_t>(value) > kMaxSmemOptin) {
    complain("cudaFuncSetAttribute: " + std::to_string(value) + " bytes of dynamic shared memory is over the device's " +
             std::to_string(kMaxSmemOptin));
    return set(cudaErrorInvalidValue);
  }
  g_smem_optin[fn] = value;
  return cudaSuccess;
}

cudaError_t submit_launch(const void* fn, const char* name, const LaunchConfig& c, std::function<void()> body) {
  std::string bad;
  const uint64_t threads = uint64_t{c.block.x} * c.block.y * c.block.z;
  if (threads == 0 || threads > 1024 || c.block.x > 1024 || c.block.y > 1024 || c.block.z > 64)
    bad = "block of " + std::to_string(c.block.x) + "x" + std::to_string(c.block.y) + "x" + std::to_string(c.block.z) +
          " threads";
  else if (c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 || c.grid.x > 0x7fffffffu || c.grid.y > 65535 ||
           c.grid.z > 65535)
    bad = "grid of " + std::to_string(c.grid.x) + "x" + std::to_string(c.grid.y) + "x" + std::to_string(c.grid.z);
  {
    std::lock_guard<std::recursive_mutex> lock(g_mu);
    auto it = g_smem_optin.find(fn);
    const std::size_t limit = it == g_smem_optin.end() ? kDefaultSmem : static_cast<std::size_t>(it->second);
    if (bad.empty() && c.smem > limit)
      bad = std::to_string(c.smem) + " bytes of dynamic shared memory (the kernel's limit is " + std::to_string(limit) +
            (it == g_smem_optin.end() ? " without cudaFuncSetAttribute)" : ")");
  }
  if (!bad.empty()) {
    complain(std::string("launch of ") + name + " refused: " + bad);
    std::lock_guard<std::recursive_mutex> lock(g_mu);
    if (c.stream && c.stream->capture && !c.stream->capture_invalid) {
      c.stream->capture_invalid = true;
      c.stream->capture_why = "an invalid launch";
    }
    return set(cudaErrorInvalidConfiguration);
  }
  const dim3 grid = c.grid, block = c.block;
  const std::size_t smem = c.smem;
  return enqueue(c.stream, name, [name, grid, block, smem, body = std::move(body)]() {
    run_grid(name, grid, block, smem, body);
  });
}

}  // namespace sppo_emu

using namespace sppo_emu;

// ---- errors ------------------------------------------------------------------------------------
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureUnmatched: return "cudaErrorStreamCaptureUnmatched";
    case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
  }
  return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureUnmatched: return "capture was not initiated in this stream";
    case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
  }
  return "unknown error";
}
cudaError_t cudaGetLastError() {
  if (g_broken != cudaSuccess) return g_broken;  // sticky: not reset
  const cudaError_t e = t_last;
  t_last = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return g_broken != cudaSuccess ? g_broken : t_last; }

// ---- device ------------------------------------------------------------------------------------
cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : set(cudaErrorInvalidDevice); }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d != 0) return set(cudaErrorInvalidDevice);
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof p->name, "sppo CUDA emulator (H200-shaped, on the CPU)");
  p->totalGlobalMem = total_memory();
  p->sharedMemPerBlock = kDefaultSmem;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = sm_count();
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int d) {
  if (d != 0) return set(cudaErrorInvalidDevice);
  switch (a) {
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; return cudaSuccess;
    case cudaDevAttrMultiProcessorCount: *v = sm_count(); return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = static_cast<int>(kMaxSmemOptin); return cudaSuccess;
  }
  return set(cudaErrorInvalidValue);
}
cudaError_t cudaDeviceSynchronize() {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (refused_in_capture("cudaDeviceSynchronize")) return cudaErrorStreamCaptureUnsupported;
  run_everything();
  return broken();
}
cudaError_t cudaMemGetInfo(std::size_t* free, std::size_t* total) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (broken()) return g_broken;
  *total = total_memory();
  *free = *total > g_device_bytes ? *total - g_device_bytes : 0;
  return cudaSuccess;
}

// ---- memory ------------------------------------------------------------------------------------
cudaError_t cudaMalloc(void** p, std::size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (refused_in_capture("cudaMalloc")) return cudaErrorStreamCaptureUnsupported;
  if (broken()) return g_broken;
  if (g_device_bytes + bytes > total_memory()) return set(cudaErrorMemoryAllocation);
  *p = allocate(bytes, Space::Device);
  return *p ? cudaSuccess : set(cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void* p) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (refused_in_capture("cudaFree")) return cudaErrorStreamCaptureUnsupported;
  run_everything();  // cudaFree waits for the device
  return release(p, Space::Device, "cudaFree");
}
cudaError_t cudaMallocHost(void** p, std::size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (refused_in_capture("cudaMallocHost")) return cudaErrorStreamCaptureUnsupported;
  if (broken()) return g_broken;
  *p = allocate(bytes, Space::Pinned);
  return *p ? cudaSuccess : set(cudaErrorMemoryAllocation);
}
cudaError_t cudaFreeHost(void* p) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (refused_in_capture("cudaFreeHost")) return cudaErrorStreamCaptureUnsupported;
  run_everything();
  return release(p, Space::Pinned, "cudaFreeHost");
}
cudaError_t cudaMallocAsync(void** p, std::size_t bytes, cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (broken()) return g_broken;
  if (!valid_stream(s)) return set(cudaErrorInvalidResourceHandle);
  if (g_device_bytes + bytes - std::min(g_pool_idle, bytes) > total_memory()) return set(cudaErrorMemoryAllocation);
  *p = allocate(bytes, Space::Device, true);
  if (!*p) return set(cudaErrorMemoryAllocation);
  if (s && s->capture) s->capture->owned.push_back(*p);  // a graph's allocation lives with the graph
  return cudaSuccess;
}
cudaError_t cudaFreeAsync(void* p, cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (!valid_stream(s)) return set(cudaErrorInvalidResourceHandle);
  if (s && s->capture) return cudaSuccess;  // freed with the graph (its `owned`)
  if (g_allocs.find(reinterpret_cast<uintptr_t>(p)) == g_allocs.end()) {
    complain("cudaFreeAsync of a pointer that is not the start of a live device allocation");
    return set(cudaErrorInvalidValue);
  }
  return enqueue(s, "cudaFreeAsync", [p]() { release(p, Space::Device, "cudaFreeAsync"); });
}
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int d) {
  if (d != 0) return set(cudaErrorInvalidDevice);
  *pool = &g_pool;
  return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr a, void* v) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (pool != &g_pool || a != cudaMemPoolAttrReleaseThreshold) return set(cudaErrorInvalidValue);
  g_pool_threshold = *static_cast<uint64_t*>(v);
  return cudaSuccess;
}
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, cudaMemPoolAttr a, void* v) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (pool != &g_pool) return set(cudaErrorInvalidValue);
  uint64_t& out = *static_cast<uint64_t*>(v);
  switch (a) {
    case cudaMemPoolAttrReleaseThreshold: out = g_pool_threshold; return cudaSuccess;
    case cudaMemPoolAttrReservedMemCurrent: out = g_pool_used + g_pool_idle; return cudaSuccess;
    case cudaMemPoolAttrUsedMemCurrent: out = g_pool_used; return cudaSuccess;
  }
  return set(cudaErrorInvalidValue);
}
// Graph allocations are the emulator's until exit (cudaGraphDestroy): nothing to give back.
cudaError_t cudaDeviceGraphMemTrim(int d) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (d != 0) return set(cudaErrorInvalidDevice);
  return broken();
}
cudaError_t cudaMemPoolTrimTo(cudaMemPool_t pool, std::size_t keep) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (pool != &g_pool) return set(cudaErrorInvalidValue);
  if (broken()) return g_broken;
  if (g_pool_idle > keep) {
    g_device_bytes -= g_pool_idle - keep;
    g_pool_idle = keep;
  }
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t n, cudaMemcpyKind k) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (refused_in_capture("cudaMemcpy")) return cudaErrorStreamCaptureUnsupported;
  if (!copy_sides_ok(dst, src, n, k, "cudaMemcpy")) return set(cudaErrorInvalidValue);
  run_everything();
  if (broken()) return g_broken;
  if (n) std::memmove(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t n, cudaMemcpyKind k, cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (!copy_sides_ok(dst, src, n, k, "cudaMemcpyAsync")) return set(cudaErrorInvalidValue);
  if (broken()) return g_broken;
  if (n == 0) return cudaSuccess;
  const bool dst_host = !is_device(dst, n), src_host = !is_device(src, n);
  const bool dst_pageable = dst_host && !is_pinned(dst, n), src_pageable = src_host && !is_pinned(src, n);
  const bool capturing = s && s->capture;
  if (capturing && (dst_pageable || src_pageable)) {
    if (!s->capture_invalid) {
      s->capture_invalid = true;
      s->capture_why = "cudaMemcpyAsync with pageable host memory during stream capture";
    }
    return set(cudaErrorStreamCaptureUnsupported);
  }
  if (src_pageable) {
    // Staged at the call: the host may reuse its buffer as soon as the call returns.
    auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                                static_cast<const unsigned char*>(src) + n);
    return enqueue(s, "cudaMemcpyAsync", [dst, staged, n]() { std::memcpy(dst, staged->data(), n); });
  }
  if (dst_pageable) {
    // To pageable memory the copy is synchronous: everything queued before it has run.
    if (s) run_all(s);
    else run_everything();
    if (broken()) return g_broken;
    std::memmove(dst, src, n);
    return cudaSuccess;
  }
  return enqueue(s, "cudaMemcpyAsync", [dst, src, n]() { std::memmove(dst, src, n); });
}
cudaError_t cudaMemset(void* p, int value, std::size_t n) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (refused_in_capture("cudaMemset")) return cudaErrorStreamCaptureUnsupported;
  if (n && !is_device(p, n)) {
    complain("cudaMemset of " + std::to_string(n) + " bytes not inside one device allocation");
    return set(cudaErrorInvalidValue);
  }
  run_everything();
  if (broken()) return g_broken;
  std::memset(p, value, n);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, std::size_t n, cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (n && !is_device(p, n)) {
    complain("cudaMemsetAsync of " + std::to_string(n) + " bytes not inside one device allocation");
    return set(cudaErrorInvalidValue);
  }
  return enqueue(s, "cudaMemsetAsync", [p, value, n]() { std::memset(p, value, n); });
}

// ---- streams and events -----------------------------------------------------------------------------
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  *s = new CUstream_st;
  g_streams.insert(*s);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (!s || !g_streams.count(s)) return set(cudaErrorInvalidResourceHandle);
  run_all(s);  // CUDA finishes the queued work before releasing the stream
  g_streams.erase(s);
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (!valid_stream(s)) return set(cudaErrorInvalidResourceHandle);
  if (refused_in_capture("cudaStreamSynchronize")) return cudaErrorStreamCaptureUnsupported;
  if (s) run_all(s);
  else run_everything();
  return broken();
}
cudaError_t cudaStreamQuery(cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (!valid_stream(s)) return set(cudaErrorInvalidResourceHandle);
  if (s && s->capture) {
    refused_in_capture("cudaStreamQuery");
    return cudaErrorStreamCaptureUnsupported;
  }
  if (broken()) return g_broken;
  // Queued work "finishes" when someone waits for it: report it busy once, then run it, so
  // a polling loop ends. Not ready is the thread's last error too, as the CUDA runtime records it.
  if (s && !s->queue.empty()) {
    run_all(s);
    if (broken()) return g_broken;
    return set(cudaErrorNotReady);
  }
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (!valid_stream(s) || !e) return set(cudaErrorInvalidResourceHandle);
  if (!e->recorded) return cudaSuccess;  // CUDA: an event never recorded is complete
  CUstream_st* src = e->stream;
  const uint64_t seq = e->seq;
  if (src == s || e->done) return cudaSuccess;
  return enqueue(s, "cudaStreamWaitEvent", [src, seq]() {
    if (g_streams.count(src)) run_until(src, seq);
  });
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags) {
  *e = new CUevent_st;
  (*e)->timing = !(flags & cudaEventDisableTiming);
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (!e || !valid_stream(s)) return set(cudaErrorInvalidResourceHandle);
  if (s && s->capture) {
    // A record inside a capture is a node of the graph: it marks the event at each replay.
    return enqueue(s, "cudaEventRecord", [e]() {
      e->done = true;
      e->at = std::chrono::steady_clock::now();
    });
  }
  e->recorded = true;
  e->done = false;
  e->stream = s;
  if (!s) {
    run_everything();
    e->done = true;
    e->at = std::chrono::steady_clock::now();
    return cudaSuccess;
  }
  e->seq = s->next_seq;
  return enqueue(s, "cudaEventRecord", [e]() {
    e->done = true;
    e->at = std::chrono::steady_clock::now();
  });
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (!e) return set(cudaErrorInvalidResourceHandle);
  if (refused_in_capture("cudaEventSynchronize")) return cudaErrorStreamCaptureUnsupported;
  if (e->recorded && !e->done && e->stream && g_streams.count(e->stream)) run_until(e->stream, e->seq);
  return broken();
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (!e) return set(cudaErrorInvalidResourceHandle);
  if (refused_in_capture("cudaEventQuery")) return cudaErrorStreamCaptureUnsupported;
  if (broken()) return g_broken;
  // As cudaStreamQuery: busy once (the last error too), then the work up to the event has run.
  if (e->recorded && !e->done && e->stream && g_streams.count(e->stream)) {
    run_until(e->stream, e->seq);
    if (broken()) return g_broken;
    return set(cudaErrorNotReady);
  }
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (!a || !b) return set(cudaErrorInvalidResourceHandle);
  if (!a->timing || !b->timing) return set(cudaErrorInvalidResourceHandle);
  if (!a->done || !b->done) return set(cudaErrorNotReady);
  *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
  return cudaSuccess;
}

// ---- capture and graphs ---------------------------------------------------------------------------
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (!s || !g_streams.count(s)) return set(cudaErrorStreamCaptureUnsupported);  // not the legacy stream
  if (s->capture || t_capturing) return set(cudaErrorIllegalState);
  if (broken()) return g_broken;
  s->capture = new CUgraph_st;
  s->capture_invalid = false;
  s->capture_why.clear();
  s->capture_thread = std::this_thread::get_id();
  t_capturing = s;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  *g = nullptr;
  if (!s || !g_streams.count(s) || !s->capture) return set(cudaErrorStreamCaptureUnmatched);
  if (s->capture_thread != std::this_thread::get_id()) return set(cudaErrorStreamCaptureWrongThread);
  CUgraph_st* graph = s->capture;
  s->capture = nullptr;
  t_capturing = nullptr;
  if (s->capture_invalid) {
    complain("capture invalidated: " + s->capture_why);
    for (void* p : graph->owned) release(p, Space::Device, "a failed capture's allocation");
    delete graph;
    return set(cudaErrorStreamCaptureInvalidated);
  }
  *g = graph;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t g, unsigned long long) {
  if (!g) return set(cudaErrorInvalidValue);
  // The exec shares the recorded work (and the graph's allocations) with the graph.
  auto copy = std::make_shared<CUgraph_st>();
  copy->ops = g->ops;
  *exec = new CUgraphExec_st{copy};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  if (!exec) return set(cudaErrorInvalidResourceHandle);
  auto graph = exec->graph;
  return enqueue(s, "cudaGraphLaunch", [graph]() {
    for (auto& op : graph->ops) op();
  });
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (!g) return cudaSuccess;
  // The allocations a capture made stay for its execs (CUDA frees them with the last user); the
  // emulator keeps them until exit.
  delete g;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
