// The CUDA backend (backend/cuda_backend.cpp) where the CUDA runtime reports more than a result:
// - a query of a busy communication stream (comm_idle) leaves no "not ready" behind as the thread's
//   last error, which the next kernel launch's check would report as its own failure;
// - the scratch pool (cudaMallocAsync, kept across steps) gives its idle memory back when an
//   allocation would otherwise fail, and available_memory() counts it;
// - a fault during a captured step's first replay (an illegal address: the context is broken for
//   good) is raised as it is, not taken for a graph that replays wrong bits and retried eagerly.
// On the GPU the fault is a real kernel reading an unmapped address; on the emulator it is
// sppo_emu::fault_when_run at the same place in the graph. The fault breaks the context, so that
// test is the file's last (tests run in the order written), and gpu-check.sh runs this suite
// outside compute-sanitizer (which would report the deliberate fault).
// Skips (exit 77) without a CUDA backend or device.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/buffer.h"
#include "backend_testing.h"
#include "cuda_compare.h"
#include "testing.h"

#ifdef SPPO_WITH_CUDA
#include <cuda_runtime.h>

using namespace sppo;
using sppo_test::Dev;
using sppo_test::Rng;

namespace {

// On the emulator, a small device, so that the pool test moves hundreds of MB, not gigabytes.
void small_emulated_device() {
#ifdef SPPO_CUDA_EMULATED
  setenv("SPPO_EMU_MEMORY_GIB", "1", 1);
#endif
}

std::vector<float> random_floats(Rng& rng, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(rng.uniform(-1, 1));
  return v;
}

}  // namespace

TEST(a_busy_communication_stream_leaves_no_error_for_the_next_launch) {
  small_emulated_device();
  auto be = backend_for(Device::CUDA);
  Rng rng(501);
  const int64_t V = 64, H = 48;
#ifdef SPPO_CUDA_EMULATED
  const int64_t M = 16;  // busy anyway: the emulator runs nothing until waited for
#else
  const int64_t M = 2048;  // ~17 GFLOP: milliseconds of work
#endif
  const std::vector<float> tv = random_floats(rng, V * H);
  Dev table(be, tv, DType::F32), ids(be, std::vector<int32_t>{3, 7}, DType::I32);
  Dev out(be, 2 * H, DType::F32);
  // Work on the compute stream that the communication stream then waits for: a product large
  // enough that the GPU is still busy when comm_idle() asks.
  Dev a(be, random_floats(rng, M * M), DType::F32), c(be, M * M, DType::F32);
  be->comm_stream();
  be->matmul(a.t(), a.t(), c.t(), M, M, M, false, false, false);
  be->comm_after_compute();
  const bool idle = be->comm_idle();
  if (idle) std::printf("  note: the communication stream was already idle (the GPU finished first)\n");
  be->embedding_forward(table.t(), V, H, ids.t(), 2, out.t());  // its launch check reads the last error
  be->synchronize();
  const std::vector<float> got = out.get<float>();
  CHECK(got[0] == tv[3 * H] && got[H + 5] == tv[7 * H + 5]);
#ifdef SPPO_CUDA_EMULATED
  CHECK(!idle);  // the emulator runs queued work only when waited for: the case is exercised here
#endif
  while (!be->comm_idle()) {
  }
}

TEST(the_scratch_pool_gives_idle_memory_back_to_allocations) {
  small_emulated_device();
  auto be = backend_for(Device::CUDA);
  be->synchronize();
  const std::size_t free0 = be->available_memory();
  const std::size_t big = free0 / 10 * 6;
  void* p = nullptr;
  cudaStream_t s = static_cast<cudaStream_t>(be->native_stream());
  CHECK(cudaMallocAsync(&p, big, s) == cudaSuccess);  // a kernel's scratch, as host_helpers.h takes it
  CHECK(cudaFreeAsync(p, s) == cudaSuccess);
  be->synchronize();
  std::size_t driver_free = 0, total = 0;
  CHECK(cudaMemGetInfo(&driver_free, &total) == cudaSuccess);
  // The pool keeps it (the backend's release threshold): the driver does not count it as free...
  CHECK(driver_free + big / 2 < free0);
  // ...the backend does, and an allocation as large as it succeeds by taking it back.
  CHECK(be->available_memory() + big / 100 >= free0);
  std::string why = sppo_test::message_of([&] { Buffer b(be, big); });
  CHECK(why.empty());
  if (!why.empty()) std::printf("  allocation of the pool's size failed: %s\n", why.c_str());
}

// Must stay last: the fault breaks this process's CUDA context for good.
TEST(a_fault_in_a_graphs_first_replay_is_raised_not_retried_eagerly) {
  small_emulated_device();
  auto be = backend_for(Device::CUDA);
  if (std::getenv("SPPO_CUDA_GRAPHS") && std::string(std::getenv("SPPO_CUDA_GRAPHS")) == "0") {
    std::printf("  skipped: SPPO_CUDA_GRAPHS=0 (no capture, no replay)\n");
    return;
  }
  Rng rng(502);
  const int64_t V = 32, H = 40;
  Dev table(be, random_floats(rng, V * H), DType::F32), ids(be, std::vector<int32_t>{1, 2, 3}, DType::I32);
  Dev out(be, 3 * H, DType::F32);
  int calls = 0;
  auto step = [&]() {
    ++calls;  // 1: the eager run; 2: the capture
    void* t = table.data();
    if (calls == 2) {
#ifdef SPPO_CUDA_EMULATED
      sppo_emu::fault_when_run(static_cast<cudaStream_t>(be->native_stream()), cudaErrorIllegalAddress);
#else
      t = reinterpret_cast<void*>(uintptr_t{0x10000});  // unmapped: an illegal address when read
#endif
    }
    be->embedding_forward(Tensor(t, DType::F32, V * H), V, H, ids.t(), 3, out.t());
  };
  std::unique_ptr<Backend::StepCapture> slot;
  const std::string why = sppo_test::message_of([&] { be->run_step(slot, step, out.t(), "faulting step"); });
  CHECK(why.find("illegal memory access") != std::string::npos);
  CHECK(calls == 2);  // no eager step after the fault
  if (calls != 2 || why.find("illegal memory access") == std::string::npos)
    std::printf("  %d calls of the step; message: %s\n", calls, why.c_str());
}

#endif

TEST_MAIN_CUDA()
