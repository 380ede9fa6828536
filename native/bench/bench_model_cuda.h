// bench_model's CUDA side: the card's two ceilings measured in the same run (device-to-device
// copy bandwidth, counting read + write bytes; a matmul through the backend's cuBLASLt, whose
// compute type is CUBLAS_COMPUTE_32F: fp32 products without TF32 for F32, tensor cores for BF16), a timer giving both the
// device time between CUDA events on the backend's stream and the host wall clock up to
// synchronize(), a sampler of device memory in use (cudaMemGetInfo every millisecond on a helper
// thread: a lower bound of the peak, as a peak shorter than a millisecond can be missed), and a
// fast random fill of a model's weights (one random chunk uploaded, tiled over the arena on the
// device; norms set to one), since the engine's init_random draws 7B values on one host thread.
#pragma once
#ifdef SPPO_WITH_CUDA
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "backend/buffer.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/parallel.h"
#include "model/llama_model.h"
#include "runtime/cuda_check.h"

namespace sppo_bench {

inline double wall_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct CudaTiming {
  double event_ms = 0, wall_ms = 0;
};

// fn() between two events on the backend's stream; the wall clock runs from before the first
// event to after synchronize() (which also throws the deferred device errors of fn's kernels).
template <typename Fn>
CudaTiming cuda_timed(sppo::Backend& be, Fn&& fn) {
  cudaStream_t s = static_cast<cudaStream_t>(be.native_stream());
  cudaEvent_t a, b;
  sppo::cuda::check_cuda(cudaEventCreate(&a), "cudaEventCreate");
  sppo::cuda::check_cuda(cudaEventCreate(&b), "cudaEventCreate");
  be.synchronize();
  sppo::cuda::check_cuda(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  const double t0 = wall_now();
  sppo::cuda::check_cuda(cudaEventRecord(a, s), "cudaEventRecord");
  fn();
  sppo::cuda::check_cuda(cudaEventRecord(b, s), "cudaEventRecord");
  sppo::cuda::check_cuda(cudaEventSynchronize(b), "cudaEventSynchronize");
  be.synchronize();
  CudaTiming t;
  t.wall_ms = (wall_now() - t0) * 1e3;
  float ms = 0;
  sppo::cuda::check_cuda(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
  t.event_ms = ms;
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return t;
}

// Device memory in use (total - free) sampled every millisecond between start() and stop().
class MemorySampler {
 public:
  static std::size_t in_use() {
    std::size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) != cudaSuccess) return 0;
    return total - free;
  }
  void start() {
    peak_ = in_use();
    run_ = true;
    th_ = std::thread([this] {
      sppo::bind_thread_to_device();
      while (run_) {
        const std::size_t u = in_use();
        std::size_t p = peak_.load();
        while (u > p && !peak_.compare_exchange_weak(p, u)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }
  std::size_t stop() {
    run_ = false;
    if (th_.joinable()) th_.join();
    return std::max(peak_.load(), in_use());
  }
  ~MemorySampler() { stop(); }

 private:
  std::atomic<bool> run_{false};
  std::atomic<std::size_t> peak_{0};
  std::thread th_;
};

// Copy bandwidth in GB/s (read + write bytes) of a device-to-device copy of `bytes`.
inline double cuda_copy_gbs(const std::shared_ptr<sppo::Backend>& be, std::size_t bytes, int iters) {
  sppo::Buffer a(be, bytes), b(be, bytes);
  sppo::cuda::check_cuda(cudaMemset(a.data(), 1, bytes), "cudaMemset");
  std::vector<double> t;
  for (int i = 0; i < iters + 2; ++i) {
    const CudaTiming x = cuda_timed(*be, [&] { be->copy(b.data(), a.data(), bytes); });
    if (i >= 2) t.push_back(x.event_ms);
  }
  std::sort(t.begin(), t.end());
  return 2.0 * static_cast<double>(bytes) / (t[t.size() / 2] * 1e6);
}

// Uniform values of standard deviation `std` (the distribution does not matter for speed; zeros
// would: they can run faster than real data).
inline void random_fill(std::vector<float>& v, uint64_t seed, double std) {
  const float a = static_cast<float>(std * std::sqrt(3.0));
  const int64_t n = static_cast<int64_t>(v.size()), chunks = 256;
  sppo::parallel_for(chunks, [&](int64_t c) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(c) * 0xBF58476D1CE4E5B9ull + 1;
    for (int64_t i = c * n / chunks; i < (c + 1) * n / chunks; ++i) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      v[static_cast<size_t>(i)] = a * (static_cast<float>(s >> 40) * (2.0f / 16777216.0f) - 1.0f);
    }
  });
}

// Fills device memory [dst, dst + bytes) by tiling a device chunk of random floats over it.
inline void tile_fill(sppo::Backend& be, const sppo::Buffer& chunk, void* dst, std::size_t bytes) {
  for (std::size_t off = 0; off < bytes; off += chunk.bytes())
    be.copy(static_cast<char*>(dst) + off, chunk.data(), std::min(chunk.bytes(), bytes - off));
}

// A random model in its weight dtype (F32 or BF16): the arena tiled with one 256 MiB random chunk of
// that dtype, every 1-D parameter (the norms) set to one.
inline void fast_init(sppo::LlamaModel& m, const sppo::Buffer& chunk) {
  sppo::Backend& be = m.backend();
  const sppo::Tensor w = m.weights();
  tile_fill(be, chunk, w.data, w.bytes());
  for (std::size_t i = 0; i < m.layout().params().size(); ++i) {
    const auto& p = m.layout()[static_cast<int>(i)];
    if (p.shape.size() != 1) continue;
    if (w.dtype == sppo::DType::BF16) {
      std::vector<uint16_t> ones(static_cast<size_t>(p.numel), sppo::f32_to_bf16(1.0f));
      be.upload(m.param(static_cast<int>(i)).data, ones.data(), ones.size() * sizeof(uint16_t));
    } else {
      std::vector<float> ones(static_cast<size_t>(p.numel), 1.0f);
      be.upload(m.param(static_cast<int>(i)).data, ones.data(), ones.size() * sizeof(float));
    }
  }
  be.synchronize();
}

// `count` random values of standard deviation `std` in device memory, as F32 or (rounded) BF16 or F16.
inline sppo::Buffer random_chunk(const std::shared_ptr<sppo::Backend>& be, std::size_t count, uint64_t seed,
                                 double std, sppo::DType dtype = sppo::DType::F32) {
  std::vector<float> h(count);
  random_fill(h, seed, std);
  if (dtype == sppo::DType::BF16 || dtype == sppo::DType::F16) {
    std::vector<uint16_t> b16(count);
    for (std::size_t i = 0; i < count; ++i) b16[i] = sppo::f32_to_16bit(dtype, h[i]);
    sppo::Buffer b(be, count * sizeof(uint16_t));
    be->upload(b.data(), b16.data(), count * sizeof(uint16_t));
    be->synchronize();
    return b;
  }
  sppo::Buffer b(be, count * sizeof(float));
  be->upload(b.data(), h.data(), count * sizeof(float));
  be->synchronize();
  return b;
}

// Matmul rate in TFLOP/s of an n x n x n product through the backend (cuBLASLt, compute type 32F:
// fp32 accumulation) with A, B and C of `dtype` (F32: true fp32 products; BF16: the tensor cores),
// median of `iters` after two warm-ups, on random operands (`chunk` holds values of `dtype`).
inline double cuda_matmul_tflops(const std::shared_ptr<sppo::Backend>& be, const sppo::Buffer& chunk, int64_t n,
                                 int iters, sppo::DType dtype = sppo::DType::F32) {
  const std::size_t bytes = static_cast<std::size_t>(n * n) * sppo::dtype_size(dtype);
  sppo::Buffer a(be, bytes), b(be, bytes), c(be, bytes);
  tile_fill(*be, chunk, a.data(), bytes);
  tile_fill(*be, chunk, b.data(), bytes);
  const sppo::Tensor ta(a.data(), dtype, n * n), tb(b.data(), dtype, n * n), tc(c.data(), dtype, n * n);
  std::vector<double> t;
  for (int i = 0; i < iters + 2; ++i) {
    const CudaTiming x = cuda_timed(*be, [&] { be->matmul(ta, tb, tc, n, n, n, false, true, false); });
    if (i >= 2) t.push_back(x.event_ms);
  }
  std::sort(t.begin(), t.end());
  return 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / (t[t.size() / 2] * 1e9);
}

}  // namespace sppo_bench
#endif
