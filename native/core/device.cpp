#include "core/device.h"

#include <atomic>

#include "core/error.h"
#include "core/parallel.h"
#include "runtime/cublaslt_shim.h"
#include "runtime/nccl_shim.h"

#ifdef SPPO_WITH_CUDA
#include <cuda_runtime.h>
#endif

#ifndef SPPO_CUDA_ARCHS_STR
#define SPPO_CUDA_ARCHS_STR ""
#endif

namespace sppo {

BuildInfo build_info() {
  BuildInfo b;
#ifdef SPPO_WITH_CUDA
  b.cuda = true;
  b.cuda_archs = SPPO_CUDA_ARCHS_STR;
#endif
#ifdef SPPO_WITH_CUDA
  // Loading the library is the only way to know (the build never links it); once per process.
  const cublaslt::LoadResult& lt = cublaslt::load();
  b.cublaslt = lt.api != nullptr;
  b.cublaslt_detail = lt.api ? cublaslt::describe() : lt.error;
#else
  b.cublaslt_detail = "this build has no CUDA backend";
#endif
  int version = 0;
  b.nccl = nccl::available(&b.nccl_reason, &version);
  if (b.nccl) b.nccl_version = nccl::version_string(version);
#ifdef _OPENMP
  b.openmp = true;
#endif
  b.cpu_threads = cpu_threads();
  return b;
}

std::vector<CudaDeviceInfo> cuda_devices(std::string* why) {
  std::vector<CudaDeviceInfo> out;
#ifdef SPPO_WITH_CUDA
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    if (why) *why = cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error so later calls are not poisoned
    return out;
  }
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    CudaDeviceInfo d;
    d.index = i;
    d.name = p.name;
    d.major = p.major;
    d.minor = p.minor;
    d.total_memory = p.totalGlobalMem;
    out.push_back(d);
  }
  if (n == 0 && why) *why = "no CUDA devices visible";
#else
  if (why) *why = "this build of sppo-native has no CUDA backend (built without nvcc or with SPPO_CUDA=off)";
#endif
  return out;
}

namespace {
std::atomic<int> g_cuda_device{0};
}  // namespace

void select_cuda_device(int index) {
  SPPO_CHECK(index >= 0, "CUDA device index must be >= 0 (got ", index, ")");
#ifdef SPPO_WITH_CUDA
  std::string why;
  const auto devs = cuda_devices(&why);
  SPPO_CHECK(index < static_cast<int>(devs.size()), "CUDA device ", index, " does not exist: ", devs.size(),
             " visible", why.empty() ? "" : " (", why, why.empty() ? "" : ")",
             "; under data parallelism rank r uses device LOCAL_RANK: start at most as many ranks per node as GPUs");
#endif
  g_cuda_device.store(index);
  bind_thread_to_device();
}

int selected_cuda_device() { return g_cuda_device.load(); }

void bind_thread_to_device() {
#ifdef SPPO_WITH_CUDA
  cudaSetDevice(g_cuda_device.load());
#endif
}

void require_device(Device device) {
  if (device == Device::CPU) return;
  std::string why;
  auto devs = cuda_devices(&why);
  if (devs.empty()) fail("device 'cuda' is not available: ", why);
}

}  // namespace sppo
