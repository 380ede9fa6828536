// The CUDA emulator itself (native/emu/; emulated builds only): what the CUDA suites run on when
// there is no GPU must behave as CUDA does where sppo-native's kernels and host code depend on it,
// and must expose the bugs it claims to expose. Kernels here are plain functions launched through
// sppo_emu::launch, as the .cu rewrite launches them.
// - barriers and warp intrinsics: block sums over several block sizes, every shuffle flavour and width
//   against its definition, ballot, __syncthreads_or / _count, lanes that exited;
// - exposed bugs: a missing barrier reads stale shared memory; a barrier some threads skip is a
//   deadlock that stops the process naming the kernel (run in a child process); exited threads
//   release a barrier (Volta and later);
// - launch settings: too many threads, too much dynamic shared memory without opting in;
// - streams: work runs when waited for, so an unsynchronised copy to pinned memory sees old data,
//   a copy to pageable memory is synchronous, device memory starts as NaN, copies check their kind;
// - capture: a graph replays its launches with the captured parameters and reads pinned inputs at
//   replay; a synchronisation or a pageable copy inside a capture fails it;
// - errors: a query of busy work leaves not ready as the last error; a fault breaks the context for
//   good (in a child process); the default pool keeps freed memory until trimmed;
// - events and CUB's sort stand-in;
// - the racecheck build (SPPO_EMU_RACECHECK: ThreadSanitizer): a missing barrier and a missing
//   __syncwarp are reported naming the kernel, and correctly ordered kernels (barriers, shuffles,
//   votes, atomics) are not. Each probe runs in a fresh process (this binary again), since a
//   forked TSan process that has fibers suppresses its reports;
// - the ASan build (SPPO_EMU_ALIGNMENT_CHECK: UBSan's alignment check): a float4 load from an
//   address that is not 16-byte aligned stops the process, as it faults on the GPU.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <cub/device/device_radix_sort.cuh>
#include <cuda_runtime.h>

#include "emu/race_annotations.h"
#include "testing.h"

using sppo_test::Rng;

#define EMU_LAUNCH(kernel, grid, block, smem, stream, ...)                                                    \
  ::sppo_emu::launch(::sppo_emu::LaunchConfig(grid, block, smem, stream), #kernel,                            \
                     reinterpret_cast<const void*>(kernel), [](auto&... a) { kernel(a...); }, __VA_ARGS__)

namespace {

// ---- kernels ------------------------------------------------------------------------------------
void block_sum_kernel(const float* x, int n, double* out) {
  __shared__ double part[32];
  double v = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) v += x[static_cast<int64_t>(blockIdx.x) * n + i];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  __syncthreads();
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < nw ? part[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) out[blockIdx.x] = v;
  }
}

// out[4 * t + k]: the four shuffles of lane value 100 + t at the given offset and width.
void shuffles_kernel(int offset, int width, int* out) {
  const int t = threadIdx.x, v = 100 + t;
  out[4 * t + 0] = __shfl_sync(0xffffffffu, v, offset, width);
  out[4 * t + 1] = __shfl_xor_sync(0xffffffffu, v, offset, width);
  out[4 * t + 2] = __shfl_up_sync(0xffffffffu, v, static_cast<unsigned>(offset), width);
  out[4 * t + 3] = __shfl_down_sync(0xffffffffu, v, static_cast<unsigned>(offset), width);
}

void votes_kernel(const int* pred, unsigned* ballots, int* ors, int* counts) {
  const int t = threadIdx.x;
  const unsigned b = __ballot_sync(0xffffffffu, pred[t]);
  if ((t & 31) == 0) ballots[t >> 5] = b;
  const int any = __syncthreads_or(pred[t]);
  const int count = __syncthreads_count(pred[t]);
  if (t == 0) {
    *ors = any;
    *counts = count;
  }
}

// Lanes 16..31 return first; the rest still reduce with the full mask, as CUDA allows (exited
// lanes do not hold a barrier). A read from an exited lane is undefined: the emulator poisons it.
void early_exit_kernel(int* out) {
  const int t = threadIdx.x;
  if (t >= 16) return;
  int v = t + 1;
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  out[t] = v;
  out[16 + t] = __shfl_down_sync(0xffffffffu, v, 16);  // from exited lanes: poison
}

// Thread 0 fills the shared buffer; without the barrier the others may read it first.
void missing_barrier_kernel(int* out, bool with_barrier) {
  __shared__ int buf[256];
  if (threadIdx.x == 0)
    for (int i = 0; i < 256; ++i) buf[i] = i * 3;
  if (with_barrier) __syncthreads();
  out[threadIdx.x] = buf[threadIdx.x];
  __syncthreads();
  if (threadIdx.x == 0)
    for (int i = 0; i < 256; ++i) buf[i] = -1;  // the next block starts stale again
}

// Half the warp waits for the whole warp, the other half for the whole block: neither completes.
void divergent_barrier_kernel(int* out) {
  if (threadIdx.x < 16) __syncwarp();
  else __syncthreads();
  out[threadIdx.x] = 1;
}

void fill_kernel(float* out, int n, float v) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = v + static_cast<float>(i);
}

void scale_kernel(const float* in, float* out, int n, float s) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = in[i] * s;
}

void smem_kernel(float* out) {
  float* s = ::sppo_emu::dynamic_shared<float>();
  s[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = s[blockDim.x - 1 - threadIdx.x];
}

// Lanes swap values through shared memory: without __syncwarp a lane may read its neighbour's slot
// before the neighbour wrote it (on Volta and later, lanes of a warp need not run in lockstep).
void warp_swap_kernel(int* out, bool with_syncwarp) {
  __shared__ int s[64];
  const int t = threadIdx.x;
  s[t] = 7 * t + 1;
  if (with_syncwarp) __syncwarp();
  out[t] = s[t ^ 1];
}

// Reads a float4 at `in` + 4 * thread: misaligned when `in` is not 16-byte aligned.
void vector_load_kernel(const float* in, float* out) {
  const float4 v = *reinterpret_cast<const float4*>(in + 4 * threadIdx.x);
  out[threadIdx.x] = v.x + v.y + v.z + v.w;
}

void count_kernel(int* counter, float* sum) {
  atomicAdd(counter, 1);
  atomicAdd(sum, 0.5f);
}

// Runs f in a child process; returns its exit signal (0: exited normally) and its stderr, and its
// exit status in *status when it exited.
int in_child(const std::function<void()>& f, std::string* err, int* status_out = nullptr) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  std::fflush(nullptr);  // or the child would print this process's buffered output again
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    f();
    _exit(0);
  }
  close(fds[1]);
  char buf[512];
  ssize_t r;
  while ((r = read(fds[0], buf, sizeof buf)) > 0) err->append(buf, static_cast<size_t>(r));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (status_out) *status_out = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

template <typename T>
T* device(size_t n) {
  T* p = nullptr;
  if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) return nullptr;
  return p;
}

}  // namespace

// Whole warps only: a full-mask shuffle in a partial warp reads lanes that do not exist (undefined
// on a GPU, poison here; see exited_lanes_...).
TEST(block_sums_over_several_block_sizes_match_the_host) {
  Rng rng(1);
  for (unsigned threads : {32u, 96u, 160u, 256u, 1024u}) {
    const int rows = 5, n = static_cast<int>(rng.integer(1, 3000));
    std::vector<float> x(static_cast<size_t>(rows * n));
    for (auto& v : x) v = static_cast<float>(rng.normal());
    float* dx = device<float>(x.size());
    double* dout = device<double>(rows);
    CHECK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    EMU_LAUNCH(block_sum_kernel, rows, threads, 0, nullptr, dx, n, dout);
    CHECK(cudaGetLastError() == cudaSuccess);
    std::vector<double> got(rows);
    CHECK(cudaMemcpy(got.data(), dout, rows * 8, cudaMemcpyDeviceToHost) == cudaSuccess);
    for (int r = 0; r < rows; ++r) {
      double want = 0;
      for (int i = 0; i < n; ++i) want += x[static_cast<size_t>(r * n + i)];
      CHECK_CLOSE(got[static_cast<size_t>(r)], want, 1e-9, 1e-12);
    }
    cudaFree(dx);
    cudaFree(dout);
  }
}

TEST(shuffles_follow_their_definitions_at_every_width) {
  for (int width : {32, 16, 8}) {
    for (int offset : {0, 1, 3, 8, 13}) {
      int* d = device<int>(4 * 64);
      EMU_LAUNCH(shuffles_kernel, 1, 64, 0, nullptr, offset, width, d);
      std::vector<int> got(4 * 64);
      cudaMemcpy(got.data(), d, got.size() * 4, cudaMemcpyDeviceToHost);
      int bad = 0;
      for (int t = 0; t < 64; ++t) {
        const int lane = t & 31, warp0 = t - lane, group = lane & ~(width - 1), in = lane - group;
        const int idx = warp0 + group + (offset & (width - 1));
        const int x = lane ^ offset;
        const int xor_src = (x & ~(width - 1)) == group ? warp0 + x : t;
        const int up_src = in >= offset ? t - offset : t;
        const int down_src = in + offset < width ? t + offset : t;
        bad += got[static_cast<size_t>(4 * t)] != 100 + idx;
        bad += got[static_cast<size_t>(4 * t + 1)] != 100 + xor_src;
        bad += got[static_cast<size_t>(4 * t + 2)] != 100 + up_src;
        bad += got[static_cast<size_t>(4 * t + 3)] != 100 + down_src;
      }
      if (bad) std::printf("  width %d offset %d: %d shuffles wrong\n", width, offset, bad);
      CHECK(bad == 0);
      cudaFree(d);
    }
  }
}

TEST(ballot_and_block_votes_count_the_predicates) {
  Rng rng(2);
  std::vector<int> pred(96);
  for (auto& p : pred) p = rng.uniform() < 0.3;
  int* dp = device<int>(96);
  unsigned* db = device<unsigned>(3);
  int *dor = device<int>(1), *dcount = device<int>(1);
  cudaMemcpy(dp, pred.data(), 96 * 4, cudaMemcpyHostToDevice);
  EMU_LAUNCH(votes_kernel, 1, 96, 0, nullptr, dp, db, dor, dcount);
  unsigned ballots[3];
  int any = -1, count = -1;
  cudaMemcpy(ballots, db, 12, cudaMemcpyDeviceToHost);
  cudaMemcpy(&any, dor, 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(&count, dcount, 4, cudaMemcpyDeviceToHost);
  int want_count = 0;
  for (int w = 0; w < 3; ++w) {
    unsigned want = 0;
    for (int l = 0; l < 32; ++l)
      if (pred[static_cast<size_t>(32 * w + l)]) want |= 1u << l;
    CHECK(ballots[w] == want);
    want_count += __builtin_popcount(want);
  }
  CHECK(count == want_count);
  CHECK(any == (want_count > 0));
}

TEST(exited_lanes_do_not_hold_a_warp_and_read_as_poison) {
  int* d = device<int>(32);
  EMU_LAUNCH(early_exit_kernel, 1, 32, 0, nullptr, d);
  std::vector<int> got(32);
  cudaMemcpy(got.data(), d, 32 * 4, cudaMemcpyDeviceToHost);
  for (int t = 0; t < 16; ++t) {
    CHECK(got[static_cast<size_t>(t)] == 136);  // 1 + 2 + ... + 16
    CHECK(got[static_cast<size_t>(16 + t)] == -1);  // 0xffffffff
  }
}

TEST(a_missing_barrier_reads_stale_shared_memory) {
  int* d = device<int>(256);
  std::vector<int> got(256);
  for (bool barrier : {true, false}) {
    if (!barrier && sppo_emu::race::kOn) {
      std::printf("  without the barrier: not run here (the racecheck build reports the race: "
                  "racecheck_reports_a_missing_barrier_naming_the_kernel)\n");
      continue;
    }
    EMU_LAUNCH(missing_barrier_kernel, 3, 256, 0, nullptr, d, barrier);
    cudaMemcpy(got.data(), d, 256 * 4, cudaMemcpyDeviceToHost);
    int stale = 0;
    for (int t = 0; t < 256; ++t) stale += got[static_cast<size_t>(t)] != t * 3;
    std::printf("  %s barrier: %d of 256 threads read stale values\n", barrier ? "with" : "without", stale);
    CHECK(barrier ? stale == 0 : stale > 0);
  }
}

TEST(a_barrier_some_threads_skip_stops_the_process_naming_the_kernel) {
  std::string err;
  const int sig = in_child(
      [] {
        int* d = device<int>(32);
        EMU_LAUNCH(divergent_barrier_kernel, 1, 32, 0, nullptr, d);
        cudaDeviceSynchronize();
      },
      &err);
  CHECK(sig == SIGABRT);
  CHECK(err.find("divergent_barrier_kernel") != std::string::npos);
  if (sig != SIGABRT) std::printf("  child ended with signal %d, stderr: %s\n", sig, err.c_str());
}

TEST(launch_settings_beyond_the_device_are_refused) {
  float* d = device<float>(2048);
  cudaGetLastError();
  EMU_LAUNCH(fill_kernel, 1, 1025, 0, nullptr, d, 1025, 0.f);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  EMU_LAUNCH(smem_kernel, 1, 64, 64 << 10, nullptr, d);  // 64 KiB without opting in
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK(cudaFuncSetAttribute(smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 << 10) == cudaSuccess);
  EMU_LAUNCH(smem_kernel, 1, 64, 64 << 10, nullptr, d);
  CHECK(cudaGetLastError() == cudaSuccess);
  std::vector<float> got(64);
  cudaMemcpy(got.data(), d, 64 * 4, cudaMemcpyDeviceToHost);
  CHECK(got[0] == 63.f && got[63] == 0.f);
  CHECK(cudaFuncSetAttribute(smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 << 10) != cudaSuccess);
  cudaGetLastError();
  cudaFree(d);
}

TEST(streams_run_work_when_it_is_waited_for) {
  cudaStream_t s;
  CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  const int n = 300;
  float* d = device<float>(n);
  float first = 0;
  cudaMemcpy(&first, d, 4, cudaMemcpyDeviceToHost);
  CHECK(std::isnan(first));  // fresh device memory is poison
  float* pinned = nullptr;
  CHECK(cudaMallocHost(&pinned, n * 4) == cudaSuccess);
  std::fill(pinned, pinned + n, -7.f);
  EMU_LAUNCH(fill_kernel, 2, 256, 0, s, d, n, 1.f);
  CHECK(cudaMemcpyAsync(pinned, d, n * 4, cudaMemcpyDeviceToHost, s) == cudaSuccess);
  CHECK(pinned[5] == -7.f);  // not waited for: the copy has not run
  CHECK(cudaStreamSynchronize(s) == cudaSuccess);
  CHECK(pinned[5] == 6.f);
  // To pageable memory the copy is synchronous.
  EMU_LAUNCH(fill_kernel, 2, 256, 0, s, d, n, 10.f);
  std::vector<float> pageable(n, -7.f);
  CHECK(cudaMemcpyAsync(pageable.data(), d, n * 4, cudaMemcpyDeviceToHost, s) == cudaSuccess);
  CHECK(pageable[5] == 15.f);
  // From pageable memory it is staged at the call: changing the source after it changes nothing.
  std::vector<float> src(n, 2.f);
  CHECK(cudaMemcpyAsync(d, src.data(), n * 4, cudaMemcpyHostToDevice, s) == cudaSuccess);
  std::fill(src.begin(), src.end(), 3.f);
  cudaStreamSynchronize(s);
  cudaMemcpy(&first, d, 4, cudaMemcpyDeviceToHost);
  CHECK(first == 2.f);
  // Copies check their kind: a host pointer as the device side is refused.
  CHECK(cudaMemcpy(pageable.data(), src.data(), 4, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(d, d + 1, n * 4, cudaMemcpyDeviceToDevice) == cudaErrorInvalidValue);  // past the end
  cudaGetLastError();
  cudaFreeHost(pinned);
  cudaFree(d);
  cudaStreamDestroy(s);
}

// As the CUDA runtime: a query that finds work still queued answers not ready, and records it as
// the thread's last error (callers clear it, or the next launch check reports it).
TEST(a_query_of_busy_work_leaves_not_ready_as_the_last_error) {
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  cudaEvent_t e;
  cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
  float* d = device<float>(64);
  cudaGetLastError();
  EMU_LAUNCH(fill_kernel, 1, 64, 0, s, d, 64, 1.f);
  CHECK(cudaStreamQuery(s) == cudaErrorNotReady);
  CHECK(cudaGetLastError() == cudaErrorNotReady);
  CHECK(cudaGetLastError() == cudaSuccess);  // not sticky
  CHECK(cudaStreamQuery(s) == cudaSuccess);  // it ran once asked about
  EMU_LAUNCH(fill_kernel, 1, 64, 0, s, d, 64, 2.f);
  cudaEventRecord(e, s);
  CHECK(cudaEventQuery(e) == cudaErrorNotReady);
  CHECK(cudaGetLastError() == cudaErrorNotReady);
  CHECK(cudaEventQuery(e) == cudaSuccess);
  cudaFree(d);
  cudaEventDestroy(e);
  cudaStreamDestroy(s);
}

// The default pool keeps what cudaFreeAsync returns, up to its release threshold: as used memory
// for cudaMemGetInfo (and cudaMalloc), as reserved but unused for the pool, until trimmed.
TEST(the_default_pool_keeps_freed_memory_until_trimmed) {
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  cudaMemPool_t pool = nullptr;
  CHECK(cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess);
  uint64_t keep = ~uint64_t{0}, was = 0;
  cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &was);
  cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
  std::size_t free0 = 0, free1 = 0, free2 = 0, total = 0;
  cudaMemGetInfo(&free0, &total);
  const std::size_t n = std::size_t{64} << 20;
  void* p = nullptr;
  CHECK(cudaMallocAsync(&p, n, s) == cudaSuccess);
  cudaFreeAsync(p, s);
  cudaStreamSynchronize(s);
  cudaMemGetInfo(&free1, &total);
  uint64_t reserved = 0, used = 0;
  cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved);
  cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used);
  CHECK(free1 + n <= free0);
  CHECK(reserved - used >= n);
  CHECK(cudaMallocAsync(&p, n, s) == cudaSuccess);  // reused: nothing more taken
  std::size_t free_reused = 0;
  cudaMemGetInfo(&free_reused, &total);
  CHECK(free_reused == free1);
  cudaFreeAsync(p, s);
  cudaStreamSynchronize(s);
  CHECK(cudaMemPoolTrimTo(pool, 0) == cudaSuccess);
  cudaMemGetInfo(&free2, &total);
  CHECK(free2 == free0);
  cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &was);
  cudaStreamDestroy(s);
}

// A fault (what an illegal address is on the GPU) breaks the context for good: the work queued
// after it never runs, and every call returns it from then on, cudaGetLastError without resetting
// it. In a child process: the context stays broken.
TEST(a_fault_breaks_the_context_for_good) {
  std::string err;
  int status = -1;
  const int sig = in_child(
      [] {
        cudaStream_t s;
        cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
        bool before = false, after = false;
        sppo_emu::enqueue(s, "before", [&before]() { before = true; });
        sppo_emu::fault_when_run(s, cudaErrorIllegalAddress);
        sppo_emu::enqueue(s, "after", [&after]() { after = true; });
        const bool ok = cudaStreamSynchronize(s) == cudaErrorIllegalAddress && before && !after &&
                        cudaGetLastError() == cudaErrorIllegalAddress && cudaGetLastError() == cudaErrorIllegalAddress &&
                        cudaPeekAtLastError() == cudaErrorIllegalAddress && device<float>(4) == nullptr &&
                        cudaStreamQuery(s) == cudaErrorIllegalAddress &&
                        sppo_emu::enqueue(s, "later", []() {}) == cudaErrorIllegalAddress &&
                        std::string(cudaGetErrorString(cudaErrorIllegalAddress)) == "an illegal memory access was encountered";
        std::fprintf(stderr, ok ? "fault: as CUDA\n" : "fault: not as CUDA (before %d, after %d)\n", before, after);
      },
      &err, &status);
  CHECK(sig == 0 && status == 0);
  CHECK(err.find("fault: as CUDA") != std::string::npos);
  if (err.find("fault: as CUDA") == std::string::npos) std::printf("  child said: %s\n", err.c_str());
}

TEST(events_time_the_work_once_it_ran) {
  cudaStream_t s;
  cudaStreamCreate(&s);
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  float* d = device<float>(1000);
  cudaEventRecord(a, s);
  EMU_LAUNCH(fill_kernel, 4, 256, 0, s, d, 1000, 0.f);
  cudaEventRecord(b, s);
  float ms = -1;
  CHECK(cudaEventElapsedTime(&ms, a, b) == cudaErrorNotReady);
  cudaGetLastError();
  CHECK(cudaEventSynchronize(b) == cudaSuccess);
  CHECK(cudaEventElapsedTime(&ms, a, b) == cudaSuccess);
  CHECK(ms >= 0);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaFree(d);
  cudaStreamDestroy(s);
}

TEST(graphs_replay_the_captured_launches_and_refuse_what_cannot_be_captured) {
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  const int n = 64;
  float *in = device<float>(n), *out = device<float>(n), *pinned = nullptr;
  cudaMallocHost(&pinned, n * 4);
  float scale = 2.f;
  CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  CHECK(cudaMemcpyAsync(in, pinned, n * 4, cudaMemcpyHostToDevice, s) == cudaSuccess);
  EMU_LAUNCH(scale_kernel, 1, 64, 0, s, in, out, n, scale);
  scale = 5.f;  // parameters are copied at the launch: the graph keeps 2
  cudaGraph_t g = nullptr;
  CHECK(cudaStreamEndCapture(s, &g) == cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  CHECK(cudaGraphInstantiate(&exec, g, 0) == cudaSuccess);
  cudaGraphDestroy(g);
  std::vector<float> got(n);
  for (float base : {1.f, 10.f}) {
    for (int i = 0; i < n; ++i) pinned[i] = base + static_cast<float>(i);  // read at each replay
    CHECK(cudaGraphLaunch(exec, s) == cudaSuccess);
    cudaStreamSynchronize(s);
    cudaMemcpy(got.data(), out, n * 4, cudaMemcpyDeviceToHost);
    CHECK(got[3] == 2.f * (base + 3.f));
  }
  cudaGraphExecDestroy(exec);
  // A synchronisation inside a capture fails it; so does a copy from pageable memory.
  CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  CHECK(cudaStreamSynchronize(s) == cudaErrorStreamCaptureUnsupported);
  CHECK(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated);
  CHECK(g == nullptr);
  std::vector<float> host(n, 1.f);
  CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  CHECK(cudaMemcpyAsync(in, host.data(), n * 4, cudaMemcpyHostToDevice, s) == cudaErrorStreamCaptureUnsupported);
  CHECK(cudaMalloc(&out, 16) == cudaErrorStreamCaptureUnsupported);
  CHECK(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated);
  cudaGetLastError();
  cudaFreeHost(pinned);
  cudaFree(in);
  cudaStreamDestroy(s);
}

TEST(the_sort_stand_in_is_stable_on_the_key_bits) {
  Rng rng(3);
  const int n = 500;
  std::vector<uint32_t> keys(n);
  std::vector<int32_t> vals(n);
  for (int i = 0; i < n; ++i) {
    keys[static_cast<size_t>(i)] = static_cast<uint32_t>(rng.integer(0, 40)) | 0x8000u;  // bit 15 above end_bit
    vals[static_cast<size_t>(i)] = i;
  }
  uint32_t *kin = device<uint32_t>(n), *kout = device<uint32_t>(n);
  int32_t *vin = device<int32_t>(n), *vout = device<int32_t>(n);
  cudaMemcpy(kin, keys.data(), n * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(vin, vals.data(), n * 4, cudaMemcpyHostToDevice);
  size_t bytes = 0;
  CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, kin, kout, vin, vout, n, 0, 6) == cudaSuccess);
  void* temp = device<char>(bytes);
  CHECK(cub::DeviceRadixSort::SortPairs(temp, bytes, kin, kout, vin, vout, n, 0, 6) == cudaSuccess);
  std::vector<uint32_t> k(n);
  std::vector<int32_t> v(n);
  cudaMemcpy(k.data(), kout, n * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(v.data(), vout, n * 4, cudaMemcpyDeviceToHost);
  for (int i = 1; i < n; ++i) {
    const uint32_t a = k[static_cast<size_t>(i - 1)] & 63, b = k[static_cast<size_t>(i)] & 63;
    CHECK(a < b || (a == b && v[static_cast<size_t>(i - 1)] < v[static_cast<size_t>(i)]));
  }
}

#ifdef SPPO_EMU_ALIGNMENT_CHECK
TEST(a_misaligned_vector_load_stops_the_process) {
  float* d = device<float>(300);
  float* out = device<float>(64);
  EMU_LAUNCH(vector_load_kernel, 1, 64, 0, nullptr, d + 4, out);  // aligned: runs
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  std::string err;
  in_child(
      [&] {
        EMU_LAUNCH(vector_load_kernel, 1, 64, 0, nullptr, d + 1, out);
        cudaDeviceSynchronize();
      },
      &err);
  CHECK(err.find("misaligned address") != std::string::npos);
  CHECK(err.find("test_cuda_emulator.cpp") != std::string::npos);  // the kernel's file and line
  CHECK(err.find("float4") != std::string::npos);
  if (err.find("misaligned address") == std::string::npos) std::printf("  child stderr: %s\n", err.c_str());
  cudaFree(d);
  cudaFree(out);
}
#endif

// ---- the racecheck build ------------------------------------------------------------------------
#ifdef SPPO_EMU_RACECHECK
namespace {

// The probes a fresh process runs (SPPO_EMU_RACE_PROBE=<name>); each launches its kernels and syncs.
void run_probe(const std::string& name) {
  int* d = device<int>(1024);
  if (name == "missing-barrier") {
    EMU_LAUNCH(missing_barrier_kernel, 2, 256, 0, nullptr, d, false);
  } else if (name == "missing-syncwarp") {
    EMU_LAUNCH(warp_swap_kernel, 1, 64, 0, nullptr, d, false);
  } else if (name == "ordered") {
    EMU_LAUNCH(missing_barrier_kernel, 2, 256, 0, nullptr, d, true);
    EMU_LAUNCH(warp_swap_kernel, 1, 64, 0, nullptr, d, true);
    std::vector<float> x(4 * 700, 1.f);
    float* dx = device<float>(x.size());
    double* dsum = device<double>(4);
    cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice);
    EMU_LAUNCH(block_sum_kernel, 4, 1024, 0, nullptr, dx, 700, dsum);  // shuffles and __syncthreads
    int pred[96];
    for (int i = 0; i < 96; ++i) pred[i] = i % 3 == 0;
    cudaMemcpy(d, pred, sizeof pred, cudaMemcpyHostToDevice);
    EMU_LAUNCH(votes_kernel, 1, 96, 0, nullptr, d, reinterpret_cast<unsigned*>(d + 100), d + 110, d + 111);
    int* counter = device<int>(1);
    float* sum = device<float>(1);
    cudaMemset(counter, 0, 4);
    cudaMemset(sum, 0, 4);
    EMU_LAUNCH(count_kernel, 3, 512, 0, nullptr, counter, sum);
    int n = 0;
    float total = 0;
    cudaMemcpy(&n, counter, 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(&total, sum, 4, cudaMemcpyDeviceToHost);
    if (n != 1536 || total != 768.f) std::fprintf(stderr, "probe ordered: atomics counted %d and %g\n", n, total);
  } else {
    std::fprintf(stderr, "unknown probe %s\n", name.c_str());
  }
  cudaDeviceSynchronize();
}

// This binary again, in a fresh process, running one probe: its stderr (TSan's reports).
std::string probe_stderr(const char* name) {
  std::string err;
  int status = -1;
  in_child(
      [name] {
        setenv("SPPO_EMU_RACE_PROBE", name, 1);
        execl("/proc/self/exe", "/proc/self/exe", static_cast<char*>(nullptr));
        _exit(127);  // exec failed
      },
      &err, &status);
  // A probe with a report exits 66 (TSan's exit code), a clean one 0.
  if (status != 0 && status != 66) err += "\n(the probe process did not run to its end)";
  return err;
}

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(racecheck_reports_a_missing_barrier_naming_the_kernel) {
  const std::string err = probe_stderr("missing-barrier");
  CHECK(has(err, "ThreadSanitizer: data race"));
  CHECK(has(err, "missing_barrier_kernel"));
  CHECK(has(err, "thread (0,0,0) kernel missing_barrier_kernel"));  // the fibers' names: block, thread, kernel
  if (!has(err, "ThreadSanitizer: data race")) std::printf("  probe stderr: %s\n", err.c_str());
}

TEST(racecheck_reports_lanes_that_skip_syncwarp) {
  const std::string err = probe_stderr("missing-syncwarp");
  CHECK(has(err, "ThreadSanitizer: data race"));
  CHECK(has(err, "warp_swap_kernel"));
  if (!has(err, "ThreadSanitizer: data race")) std::printf("  probe stderr: %s\n", err.c_str());
}

TEST(racecheck_is_silent_where_barriers_shuffles_votes_and_atomics_order_the_threads) {
  const std::string err = probe_stderr("ordered");
  CHECK(!has(err, "ThreadSanitizer"));
  CHECK(!has(err, "probe"));
  if (!err.empty()) std::printf("  probe stderr: %s\n", err.c_str());
}
#endif

int main() {
#ifdef SPPO_EMU_RACECHECK
  if (const char* probe = std::getenv("SPPO_EMU_RACE_PROBE")) {
    run_probe(probe);
    return 0;
  }
#endif
  return ::sppo_test::run_all();
}
