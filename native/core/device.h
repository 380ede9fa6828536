// Where a computation runs. The CPU backend is the reference and always exists; the CUDA backend
// exists only in builds with SPPO_WITH_CUDA and on machines with a visible GPU.
#pragma once
#include <string>
#include <vector>

namespace sppo {

enum class Device : int { CPU = 0, CUDA = 1 };

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;
  std::size_t total_memory = 0;
};

struct BuildInfo {
  bool cuda = false;           // CUDA backend compiled in
  std::string cuda_archs;      // e.g. "80,90"
  bool cublaslt = false;       // cuBLASLt loaded at run time (runtime/cublaslt_shim.h); CUDA builds only
  std::string cublaslt_detail; // its version and file when loaded, else why not
  bool nccl = false;           // libnccl.so.2 loads here (NCCL is loaded at run time)
  std::string nccl_version;   // e.g. "2.21.5"
  std::string nccl_reason;    // why not, when nccl is false
  int cpu_threads = 1;
  bool openmp = false;
};

BuildInfo build_info();

// Devices the CUDA runtime sees; empty in a CPU-only build or on a machine without a GPU.
// Never throws: a driver error means "no devices" (the reason goes to *why when given).
std::vector<CudaDeviceInfo> cuda_devices(std::string* why = nullptr);

// Throws sppo::Error naming the reason when `device` cannot be used here.
void require_device(Device device);

// The GPU this process uses (under data parallelism, its LOCAL_RANK; default 0). Set it before the
// CUDA backend is first used; throws naming the devices there are when `index` is not one of them.
// CUDA's current device is per thread: bind_thread_to_device() makes the selected one current on
// the calling thread (the addon's worker threads, a communicator's watchdog). No-op without CUDA.
void select_cuda_device(int index);
int selected_cuda_device();
void bind_thread_to_device();

}  // namespace sppo
