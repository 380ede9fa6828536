// The CUDA side of the op benchmarks (bench_<op>.cpp with --device cuda): device copies of host
// vectors (F32, or rounded to BF16), and the median of timed runs measured with CUDA events on
// the backend's stream, so the figure is device time of the queued kernels (launch gaps included,
// no host synchronisation inside). There are no floors on the GPU (the CPU floors of
// bench_common.h do not apply): rows give ms and the rate only. In a build without CUDA,
// --device cuda is refused with a message.
#pragma once
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/buffer.h"
#include "bench_common.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"

#ifdef SPPO_WITH_CUDA
#include <cuda_runtime.h>

#include "runtime/cuda_check.h"
#endif

namespace sppo_bench {

// --device cpu|cuda, checked (cuda needs a CUDA build and a visible GPU).
inline bool wants_cuda(Args& a) {
  const std::string d = a.text("--device", "cpu");
  if (d != "cpu" && d != "cuda") sppo::fail("--device must be cpu or cuda (got '", d, "')");
  if (d == "cuda") sppo::require_device(sppo::Device::CUDA);
  return d == "cuda";
}

// --dtype f32|bf16 for the GPU (the CPU backend computes in F32 here).
inline sppo::DType gpu_dtype(Args& a, bool cuda) {
  const std::string d = a.text("--dtype", "f32");
  if (d != "f32" && d != "bf16") sppo::fail("--dtype must be f32 or bf16 (got '", d, "')");
  if (d == "bf16" && !cuda) sppo::fail("--dtype bf16 needs --device cuda (the CPU backend computes in F32)");
  return d == "bf16" ? sppo::DType::BF16 : sppo::DType::F32;
}

// A device tensor holding host values as `dt`.
class DeviceVec {
 public:
  template <typename T>
  DeviceVec(const std::shared_ptr<sppo::Backend>& be, const std::vector<T>& v, sppo::DType dt)
      : n_(static_cast<int64_t>(v.size())), dt_(dt) {
    buf_ = sppo::Buffer(be, static_cast<std::size_t>(n_) * sppo::dtype_size(dt));
    if (dt == sppo::DType::BF16) {
      std::vector<uint16_t> h(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) h[i] = sppo::f32_to_bf16(static_cast<float>(v[i]));
      be->upload(buf_.data(), h.data(), h.size() * sizeof(uint16_t));
    } else {
      be->upload(buf_.data(), v.data(), v.size() * sizeof(T));
    }
  }
  sppo::Tensor t() const { return sppo::Tensor(buf_.data(), dt_, n_); }

 private:
  sppo::Buffer buf_;
  int64_t n_;
  sppo::DType dt_;
};

#ifdef SPPO_WITH_CUDA
// Median device ms of fn() over a.iters runs after a.warmup runs, each between two events on the
// backend's stream; synchronize() after each run also surfaces deferred device errors.
template <typename Fn>
double cuda_time_ms(const Args& a, sppo::Backend& be, Fn&& fn) {
  cudaStream_t s = static_cast<cudaStream_t>(be.native_stream());
  cudaEvent_t e0, e1;
  sppo::cuda::check_cuda(cudaEventCreate(&e0), "cudaEventCreate");
  sppo::cuda::check_cuda(cudaEventCreate(&e1), "cudaEventCreate");
  std::vector<double> t;
  for (int i = 0; i < a.warmup + a.iters; ++i) {
    sppo::cuda::check_cuda(cudaEventRecord(e0, s), "cudaEventRecord");
    fn();
    sppo::cuda::check_cuda(cudaEventRecord(e1, s), "cudaEventRecord");
    be.synchronize();
    float ms = 0;
    sppo::cuda::check_cuda(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
    if (i >= a.warmup) t.push_back(ms);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return median(t);
}
#else
template <typename Fn>
double cuda_time_ms(const Args&, sppo::Backend&, Fn&&) {
  sppo::fail("this build has no CUDA backend (SPPO_CUDA=off or no nvcc)");
}
#endif

inline void print_cuda_header(const char* title) {
  const auto devs = sppo::cuda_devices();
  std::printf("sppo-native bench: %s\n", title);
  std::printf("device: CUDA %s (device time between CUDA events; no floors on the GPU)\n",
              devs.empty() ? "?" : devs[0].name.c_str());
  std::printf("%-22s %-28s %10s %14s\n", "op", "shape", "ms", "rate");
}

inline void cuda_row(const std::string& op, const std::string& shape, double ms, Bound bound, double amount) {
  char r[32];
  std::snprintf(r, sizeof r, "%.1f %s", amount / (ms * 1e6), bound == Bound::Memory ? "GB/s" : "GFLOP/s");
  std::printf("%-22s %-28s %10.3f %14s\n", op.c_str(), shape.c_str(), ms, r);
  std::fflush(stdout);
}

}  // namespace sppo_bench
