// The CUDA emulator's device language (CONTRACT: scheduler in emu/block_scheduler.cpp): what a
// kernel in kernels/cuda/*.cu needs to compile with the host compiler and run on the CPU.
//
// A launch runs every block, one after another in a shuffled order, each block's threads as
// fibers on the calling thread. Threads switch only at __syncthreads*, __syncwarp and the warp
// intrinsics, so a block's threads interleave exactly at its synchronisation points: a missing
// barrier shows up because the fibers are resumed in a shuffled, alternating order. A deadlock
// (a barrier some threads never reach), a warp intrinsic whose mask omits the caller, or masks
// that disagree within a warp stop the process with the kernel, block and thread named.
//
// What it is not: a GPU. No timing, no memory model beyond barriers, no tensor cores; intrinsics
// such as __expf are the host's libm. It checks the kernels' logic (indexing, barriers, warp
// exchanges, launch settings) and the host code's use of the runtime (emu/cuda_emu_runtime.h).
#pragma once
#include <math.h>  // expf, fmaxf, ...: the global names device code uses

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <typeinfo>

// ---- qualifiers --------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __constant__
#define __align__(n) alignas(n)
// One block runs at a time in the process (grids run under the runtime's lock), so a function's
// static is its block's shared memory (dynamic shared memory: sppo_emu::dynamic_shared, which the
// .cu rewrite uses).
#define __shared__ static

// ---- vector types ----------------------------------------------------------------------------------
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

// The calling fiber's coordinates (set by the scheduler before it resumes a thread).
extern uint3 threadIdx;
extern uint3 blockIdx;
extern dim3 blockDim;
extern dim3 gridDim;
constexpr int warpSize = 32;

namespace sppo_emu {

// ---- the scheduler's entry points (emu/block_scheduler.cpp) -------------------------------------
void block_barrier();
int block_barrier_count(int predicate);  // returns how many threads passed a non-zero predicate
// Warp exchange: deposit `bytes` of `value`, wait for the lanes of `mask`, copy lane `src`'s
// deposit into `out` (poison when `src` is outside the mask or has exited), wait again.
void warp_exchange(unsigned mask, const void* value, int bytes, int src, void* out);
void warp_barrier(unsigned mask);
unsigned warp_ballot(unsigned mask, bool predicate);
int lane_id();
void* dynamic_shared_base();
[[noreturn]] void fault(const char* what);

template <typename T>
T* dynamic_shared() {
  return static_cast<T*>(dynamic_shared_base());
}

template <typename T>
T shuffle_from(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= 16 && std::is_trivially_copyable<T>::value, "warp shuffle of an unsupported type");
  T out;
  warp_exchange(mask, &v, static_cast<int>(sizeof(T)), src, &out);
  return out;
}

}  // namespace sppo_emu

// ---- synchronisation and warp intrinsics -------------------------------------------------------
inline void __syncthreads() { sppo_emu::block_barrier(); }
inline int __syncthreads_or(int p) { return sppo_emu::block_barrier_count(p) > 0; }
inline int __syncthreads_and(int p) {
  return sppo_emu::block_barrier_count(!p) == 0;
}
inline int __syncthreads_count(int p) { return sppo_emu::block_barrier_count(p); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { sppo_emu::warp_barrier(mask); }
inline void __threadfence() {}
inline void __threadfence_block() {}

template <typename T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  const int lane = sppo_emu::lane_id();
  return sppo_emu::shuffle_from(mask, v, (lane & ~(width - 1)) + (src & (width - 1)));
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = sppo_emu::lane_id();
  const int src = lane ^ lane_mask;
  // Outside the caller's width-group the hardware returns the caller's own value.
  return sppo_emu::shuffle_from(mask, v, (src & ~(width - 1)) == (lane & ~(width - 1)) ? src : lane);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = sppo_emu::lane_id();
  const int src = lane - static_cast<int>(delta);
  return sppo_emu::shuffle_from(mask, v, src >= (lane & ~(width - 1)) ? src : lane);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = sppo_emu::lane_id();
  const int src = lane + static_cast<int>(delta);
  return sppo_emu::shuffle_from(mask, v, src < (lane & ~(width - 1)) + width ? src : lane);
}
inline unsigned __ballot_sync(unsigned mask, int p) { return sppo_emu::warp_ballot(mask, p != 0); }
inline int __any_sync(unsigned mask, int p) { return sppo_emu::warp_ballot(mask, p != 0) != 0; }
inline int __all_sync(unsigned mask, int p) { return sppo_emu::warp_ballot(mask, p == 0) == 0; }

// ---- atomics ---------------------------------------------------------------------------------
// One block runs at a time, so a plain update would be atomic already. They are relaxed atomic
// operations (as CUDA's are) all the same, so that the racecheck build's ThreadSanitizer sees
// atomics, not races (emu/race_annotations.h).
template <typename T, typename F>
T sppo_emu_atomic(T* p, F next) {
  T old;
  __atomic_load(p, &old, __ATOMIC_RELAXED);
  T want = next(old);
  while (!__atomic_compare_exchange(p, &old, &want, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) want = next(old);
  return old;
}
template <typename T>
T atomicAdd(T* p, T v) {
  return sppo_emu_atomic(p, [v](T o) { return static_cast<T>(o + v); });
}
template <typename T>
T atomicMin(T* p, T v) {
  return sppo_emu_atomic(p, [v](T o) { return v < o ? v : o; });
}
template <typename T>
T atomicMax(T* p, T v) {
  return sppo_emu_atomic(p, [v](T o) { return v > o ? v : o; });
}
template <typename T>
T atomicCAS(T* p, T compare, T v) {
  return sppo_emu_atomic(p, [compare, v](T o) { return o == compare ? v : o; });
}
template <typename T>
T atomicExch(T* p, T v) {
  return sppo_emu_atomic(p, [v](T) { return v; });
}
template <typename T>
T atomicOr(T* p, T v) {
  return sppo_emu_atomic(p, [v](T o) { return static_cast<T>(o | v); });
}

// ---- bit casts, rounding-mode arithmetic, fast math ------------------------------------------
template <typename To, typename From>
inline To sppo_emu_bits(From f) {
  static_assert(sizeof(To) == sizeof(From), "bit cast of different sizes");
  To t;
  std::memcpy(&t, &f, sizeof t);
  return t;
}
inline unsigned __float_as_uint(float f) { return sppo_emu_bits<unsigned>(f); }
inline float __uint_as_float(unsigned u) { return sppo_emu_bits<float>(u); }
inline int __float_as_int(float f) { return sppo_emu_bits<int>(f); }
inline float __int_as_float(int u) { return sppo_emu_bits<float>(u); }
inline long long __double_as_longlong(double d) { return sppo_emu_bits<long long>(d); }
inline double __longlong_as_double(long long v) { return sppo_emu_bits<double>(v); }
// Round-to-nearest operations, never fused. The kernels are compiled to contract a * b + c into
// an FMA where the host has one, as nvcc does by default (--fmad=true); these intrinsics are how a
// kernel opts out, so their results pass through an empty asm the compiler cannot see into.
template <typename T>
inline T sppo_emu_unfused(T v) {
  asm("" : "+x"(v));
  return v;
}
inline float __fadd_rn(float a, float b) { return sppo_emu_unfused(a + b); }
inline float __fsub_rn(float a, float b) { return sppo_emu_unfused(a - b); }
inline float __fmul_rn(float a, float b) { return sppo_emu_unfused(a * b); }
inline float __fdiv_rn(float a, float b) { return sppo_emu_unfused(a / b); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dadd_rn(double a, double b) { return sppo_emu_unfused(a + b); }
inline double __dsub_rn(double a, double b) { return sppo_emu_unfused(a - b); }
inline double __dmul_rn(double a, double b) { return sppo_emu_unfused(a * b); }
inline double __ddiv_rn(double a, double b) { return sppo_emu_unfused(a / b); }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : x > 1.f ? 1.f : x; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
template <typename T>
inline T __ldg(const T* p) {
  return *p;
}
// CUDA's min / max overloads for device code.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
