// Happens-before for the emulator's racecheck build (SPPO_EMU_RACECHECK; docs/cuda-emulator.md),
// used by emu/block_scheduler.cpp only. There the kernels are compiled with ThreadSanitizer and
// every CUDA thread is a TSan fiber, switched without synchronising: TSan then sees two threads'
// accesses as ordered only through the edges the scheduler declares here, which are CUDA's:
// - a block's start after the host's work before the launch, and after the previous block's end
//   (blocks are not checked against each other: racecheck's domain is one block);
// - every arrival at a __syncthreads before every departure from it, and the same for the lanes
//   of one warp at __syncwarp and at each shuffle or vote;
// - the host after the grid.
// Nothing else orders two threads, so an access pair with no barrier between them is a race
// whichever order the fibers happened to run in. Elsewhere these are no-ops.
#pragma once

#ifdef SPPO_EMU_RACECHECK
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_set_fiber_name(void* fiber, const char* name);
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
}
#endif

namespace sppo_emu::race {

#ifdef SPPO_EMU_RACECHECK
inline void* current_fiber() { return __tsan_get_current_fiber(); }
inline void* new_fiber() { return __tsan_create_fiber(0); }
inline void name_fiber(void* f, const char* name) { __tsan_set_fiber_name(f, name); }
// Call right before the context switch; flag 1 (__tsan_switch_to_fiber_no_sync): switching itself
// orders nothing, as the fibers stand for threads that run at once.
inline void switch_to(void* f) { __tsan_switch_to_fiber(f, 1); }
inline void release(const void* sync) { __tsan_release(const_cast<void*>(sync)); }
inline void acquire(const void* sync) { __tsan_acquire(const_cast<void*>(sync)); }
constexpr bool kOn = true;
// For its scope, the calling fiber's memory traffic is invisible to TSan: the scheduler's queues
// and exchange slots, shared by every fiber by design, reached through intercepted calls (malloc,
// memcpy) that the file's missing instrumentation does not hide. Ordering still counts.
struct Quiet {
  Quiet() { __tsan_ignore_thread_begin(); }
  ~Quiet() { __tsan_ignore_thread_end(); }
  Quiet(const Quiet&) = delete;
  Quiet& operator=(const Quiet&) = delete;
};
#else
inline void* current_fiber() { return nullptr; }
inline void* new_fiber() { return nullptr; }
inline void name_fiber(void*, const char*) {}
inline void switch_to(void*) {}
inline void release(const void*) {}
inline void acquire(const void*) {}
constexpr bool kOn = false;
struct Quiet {
  Quiet() {}  // user-provided: an unused-variable warning would flag every scope guard
};
#endif

}  // namespace sppo_emu::race
