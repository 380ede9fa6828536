// How the CPU backend (cpu_backend.cpp) runs the 16-bit float types, BF16 and F16: by emulation.
// Each 16-bit input is widened to fp32 (exact), the fp32 kernel runs, and each 16-bit output is
// rounded once to nearest even (f32_to_bf16, f32_to_f16): the rounding points of the CUDA kernels
// (fp32 arithmetic, outputs rounded once), so a GPU session can compare CUDA bf16 or fp16 with the
// CPU's. F32 tensors pass through uncopied.
//
// One object per op call hands the kernel pointers of its compute type:
//   in(t, n)     the first n elements of an input
//   out(t, n)    an output the kernel overwrites (fp32 scratch filled with NaN, so an element the
//                kernel leaves unwritten comes back NaN, never stale)
//   inout(t, n)  an output the kernel reads first (accumulate, in place): widened, then rounded
// and narrow() rounds the 16-bit outputs and in-outs into their tensors once the kernel returned.
// A kernel that throws never reaches narrow(): its 16-bit outputs keep what they held.
// Direct<double> is the same interface over F64 tensors (the fp64 twin), with no copies.
#pragma once
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "core/parallel.h"
#include "core/tensor.h"

namespace sppo {

// BF16 or F16: the tensors this emulation widens and narrows.
inline bool is_half(DType t) { return t == DType::BF16 || t == DType::F16; }

class HalfEmulation {
 public:
  const float* in(const Tensor& t, int64_t n) {
    if (!is_half(t.dtype) || t.empty()) return t.as<float>();
    float* w = scratch(n);
    widen(t.dtype, t.as<uint16_t>(), w, n);
    return w;
  }
  float* out(const Tensor& t, int64_t n) {
    if (!is_half(t.dtype) || t.empty()) return t.as<float>();
    float* w = scratch(n);
    blocks(n, [&](int64_t i) { w[i] = std::numeric_limits<float>::quiet_NaN(); });
    pending_.push_back({t.dtype, t.as<uint16_t>(), w, n});
    return w;
  }
  float* inout(const Tensor& t, int64_t n) {
    if (!is_half(t.dtype) || t.empty()) return t.as<float>();
    float* w = scratch(n);
    widen(t.dtype, t.as<uint16_t>(), w, n);
    pending_.push_back({t.dtype, t.as<uint16_t>(), w, n});
    return w;
  }
  void narrow() {
    for (const Pending& p : pending_) {
      if (p.dtype == DType::BF16) blocks(p.n, [&](int64_t i) { p.dst[i] = f32_to_bf16(p.src[i]); });
      else blocks(p.n, [&](int64_t i) { p.dst[i] = f32_to_f16(p.src[i]); });
    }
    pending_.clear();
  }

 private:
  struct Pending {
    DType dtype;  // BF16 or F16
    uint16_t* dst;
    const float* src;
    int64_t n;
  };
  float* scratch(int64_t n) {
    scratch_.emplace_back(new float[static_cast<std::size_t>(n > 0 ? n : 1)]);
    return scratch_.back().get();
  }
  static void widen(DType t, const uint16_t* src, float* dst, int64_t n) {
    if (t == DType::BF16) blocks(n, [&](int64_t i) { dst[i] = bf16_to_f32(src[i]); });
    else blocks(n, [&](int64_t i) { dst[i] = f16_to_f32(src[i]); });
  }
  // fn(i) for i in [0, n), in blocks over the threads (a pass over memory: large blocks).
  template <typename Fn>
  static void blocks(int64_t n, Fn&& fn) {
    constexpr int64_t kBlock = 1 << 15;
    parallel_for((n + kBlock - 1) / kBlock, [&](int64_t b) {
      const int64_t end = (b + 1) * kBlock < n ? (b + 1) * kBlock : n;
      for (int64_t i = b * kBlock; i < end; ++i) fn(i);
    });
  }

  std::vector<std::unique_ptr<float[]>> scratch_;
  std::vector<Pending> pending_;
};

// F64 (or F32-only) tensors: the tensors themselves.
template <typename T>
struct Direct {
  const T* in(const Tensor& t, int64_t) const { return t.as<T>(); }
  T* out(const Tensor& t, int64_t) const { return t.as<T>(); }
  T* inout(const Tensor& t, int64_t) const { return t.as<T>(); }
  void narrow() const {}
};

// Runs body(io) for an op of compute type `dt` (checked: F32, F64, BF16 or F16): io is a
// Direct<double> for F64, else a HalfEmulation (F32, BF16 and F16 tensors, fp32 kernels); then narrows.
template <typename Body>
void with_compute_type(DType dt, Body&& body) {
  if (dt == DType::F64) {
    Direct<double> io;
    body(io);
    return;
  }
  HalfEmulation io;
  body(io);
  io.narrow();
}

}  // namespace sppo
