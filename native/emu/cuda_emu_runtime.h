// The CUDA emulator's runtime API (CONTRACT: emu/runtime.cpp): the subset of cuda_runtime.h that
// sppo-native's CUDA backend calls, with CUDA's names, so that backend/cuda_backend.cpp,
// runtime/*.cpp and kernels/cuda/*.cu build unchanged against it.
//
// Faithful where bugs hide:
// - Streams are queues. Work runs when the host waits for it (cudaStreamSynchronize,
//   cudaEventSynchronize, a synchronous copy, cudaFree), not when queued, so a host that reads a
//   result it has not waited for reads what was there before. Copies to pageable host memory are
//   synchronous and copies from it are staged at the call, as in CUDA.
// - Device memory is filled with 0xff bytes (NaN as F32 and BF16) when allocated. Copies check
//   that each side is (device) or is not (host) inside an allocation, per the copy's kind.
// - Stream capture records work into a graph instead of queueing it; a graph launch replays it
//   with the parameters captured. Synchronising or synchronous calls inside a capture fail it, as
//   does a copy to or from pageable host memory.
// - Launch settings are checked against an H200's limits (1024 threads, 48 KiB of dynamic shared
//   memory unless cudaFuncSetAttribute raised it, at most 227 KiB).
// - Errors: a query of a busy stream or event leaves cudaErrorNotReady as the thread's last error
//   (as the CUDA runtime records it). A fault (sppo_emu::fault_when_run: what an illegal address
//   is on the GPU) breaks the context for good: the work queued after it never runs, and every
//   call from then on returns the fault, cudaGetLastError included (it does not reset it).
// - The default memory pool keeps what cudaFreeAsync gave back, up to its release threshold, as
//   used device memory until cudaMemPoolTrimTo (cudaMallocAsync reuses it; cudaMalloc cannot).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <tuple>
#include <utility>

#include "emu/cuda_emu_device.h"

enum cudaError_t : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalState = 401,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchFailure = 719,
  cudaErrorNotSupported = 801,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureUnmatched = 903,
  cudaErrorStreamCaptureWrongThread = 908,
};
using cudaError = cudaError_t;

struct CUstream_st;
struct CUevent_st;
struct CUgraph_st;
struct CUgraphExec_st;
struct CUmemPoolHandle_st;
using cudaStream_t = CUstream_st*;
using cudaEvent_t = CUevent_st*;
using cudaGraph_t = CUgraph_st*;
using cudaGraphExec_t = CUgraphExec_st*;
using cudaMemPool_t = CUmemPoolHandle_st*;

enum cudaMemcpyKind : int {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaStreamCaptureMode : int {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2,
};
enum cudaDeviceAttr : int {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
enum cudaFuncAttribute : int { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaMemPoolAttr : int {
  cudaMemPoolAttrReleaseThreshold = 4,
  cudaMemPoolAttrReservedMemCurrent = 5,
  cudaMemPoolAttrUsedMemCurrent = 7,
};
constexpr unsigned cudaStreamDefault = 0x00, cudaStreamNonBlocking = 0x01;
constexpr unsigned cudaEventDefault = 0x00, cudaEventDisableTiming = 0x02;
constexpr unsigned cudaHostAllocDefault = 0x00;

struct cudaDeviceProp {
  char name[256];
  std::size_t totalGlobalMem;
  std::size_t sharedMemPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int major, minor;
  int multiProcessorCount;
};

const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();

cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d);
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int d);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMemGetInfo(std::size_t* free, std::size_t* total);

cudaError_t cudaMalloc(void** p, std::size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocHost(void** p, std::size_t bytes);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMallocAsync(void** p, std::size_t bytes, cudaStream_t s);
cudaError_t cudaFreeAsync(void* p, cudaStream_t s);
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int d);
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr a, void* v);
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, cudaMemPoolAttr a, void* v);
cudaError_t cudaMemPoolTrimTo(cudaMemPool_t pool, std::size_t keep);
cudaError_t cudaDeviceGraphMemTrim(int device);

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemset(void* p, int value, std::size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, std::size_t bytes, cudaStream_t s = nullptr);

cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamQuery(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);

cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t g, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

namespace sppo_emu {

// The emulator's settings (SPPO_EMU_*): a whole number in [min, max], else `dflt` when unset; any
// other value stops the process naming the variable.
uint64_t env_number(const char* name, uint64_t dflt, uint64_t min, uint64_t max);

cudaError_t func_set_attribute(const void* fn, cudaFuncAttribute a, int value);

// Queue work on a stream (or record it into the stream's capture). Null stream: runs now, after
// everything queued (the legacy stream's ordering).
cudaError_t enqueue(cudaStream_t s, const char* what, std::function<void()> work);

// Queues (or records into a capture) a fault `e`: when the stream reaches it, the context breaks
// as a kernel's illegal address breaks it on the GPU (tests of sticky-error handling).
cudaError_t fault_when_run(cudaStream_t s, cudaError_t e);

// One kernel launch: checks the settings, then queues (or records) the run of every block.
struct LaunchConfig {
  dim3 grid, block;
  std::size_t smem;
  cudaStream_t stream;
  LaunchConfig(dim3 g, dim3 b, std::size_t sm = 0, cudaStream_t st = nullptr) : grid(g), block(b), smem(sm), stream(st) {}
};
cudaError_t submit_launch(const void* fn, const char* name, const LaunchConfig& c, std::function<void()> body);
// Runs the blocks now (the queue's worker): emu/block_scheduler.cpp.
void run_grid(const char* name, dim3 grid, dim3 block, std::size_t smem, const std::function<void()>& body);

// What `kernel<<<grid, block, smem, stream>>>(args...)` becomes (scripts/cuda-emu-rewrite.mjs):
// `call` is `[=](auto&... a) { kernel(a...); }`, so a kernel template's arguments are deduced
// as nvcc deduces them; the arguments are evaluated and copied now, as CUDA copies them at the
// launch. `fn` is the kernel's address where it has one without deduction (the key of
// cudaFuncSetAttribute), else null.
template <typename Call, typename... A>
void launch(const LaunchConfig& c, const char* name, const void* fn, Call call, A&&... args) {
  auto params = std::make_tuple(std::decay_t<A>(std::forward<A>(args))...);
  submit_launch(fn, name, c, [call, params]() mutable {
    auto copy = params;  // each thread gets its own parameter copies
    std::apply(call, copy);
  });
}

}  // namespace sppo_emu

template <typename F>
cudaError_t cudaFuncSetAttribute(F* fn, cudaFuncAttribute a, int value) {
  return sppo_emu::func_set_attribute(reinterpret_cast<const void*>(fn), a, value);
}

// cuda_runtime.h's typed overloads.
template <typename T>
cudaError_t cudaMalloc(T** p, std::size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
template <typename T>
cudaError_t cudaMallocHost(T** p, std::size_t bytes) {
  return cudaMallocHost(reinterpret_cast<void**>(p), bytes);
}
template <typename T>
cudaError_t cudaMallocAsync(T** p, std::size_t bytes, cudaStream_t s) {
  return cudaMallocAsync(reinterpret_cast<void**>(p), bytes, s);
}
