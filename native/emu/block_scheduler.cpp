// The CUDA emulator's block scheduler (emu/cuda_emu_device.h): every block of a launch in a
// shuffled order, each block's threads as fibers on the calling host thread, switched only at the
// synchronisation points. Fibers use a small x86-64 context switch (the callee-saved registers;
// MXCSR and the x87 control word are shared, as no kernel changes the rounding mode), not
// swapcontext, which makes a system call per switch. In the racecheck build this file is compiled
// without ThreadSanitizer (its bookkeeping is shared by all fibers by design) and declares CUDA's
// ordering to it instead (emu/race_annotations.h).
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "emu/cuda_emu_runtime.h"
#include "emu/race_annotations.h"

#if !defined(__x86_64__)
#error "the CUDA emulator's fibers are written for x86-64"
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SPPO_EMU_ASAN 1
extern "C" void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, std::size_t size);
extern "C" void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, std::size_t* size_old);
extern "C" void __asan_unpoison_memory_region(void const volatile* addr, std::size_t size);
#endif

// Plain globals: grids run only under the runtime's lock (emu/runtime.cpp runs queued work while
// holding it), so one block runs at a time in the whole process.
uint3 threadIdx;
uint3 blockIdx;
dim3 blockDim;
dim3 gridDim;

// void sppo_emu_switch(void** save_sp, void* new_sp): saves this context's registers on its stack
// and its stack pointer in *save_sp, then resumes the context whose stack pointer is new_sp.
asm(R"(
  .text
  .p2align 4
  .globl sppo_emu_switch
  .type sppo_emu_switch, @function
sppo_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size sppo_emu_switch, .-sppo_emu_switch
)");
extern "C" void sppo_emu_switch(void** save_sp, void* new_sp);

namespace sppo_emu {
namespace {

constexpr std::size_t kStackBytes = std::size_t{256} << 10;  // per thread: kernels keep arrays in "registers"
constexpr unsigned kFullMask = 0xffffffffu;

struct Fiber {
  void* sp = nullptr;
  void* race = nullptr;  // its TSan fiber (racecheck build)
  char* stack = nullptr;  // mmap'd, a guard page below
  uint3 tid{};
  int lane = 0, warp = 0;
  bool done = false;
  uintptr_t skew = 0;    // the stack top's offset: stacks 256 KiB apart would share cache sets
};

struct Warp {
  unsigned live = 0;     // lanes that exist and have not exited
  unsigned arrived = 0;  // lanes waiting at the current warp barrier
  unsigned mask = 0;     // the current barrier's mask (every arriving lane must agree)
  unsigned generation = 0;  // barriers released so far (the racecheck build's sync slot)
  // Exchange slots, double-buffered by the lanes' exchange count: one barrier per exchange is
  // enough, since a lane can refill a parity only after every lane has read it (the exchange in
  // between cannot complete before).
  alignas(16) unsigned char slot[2][32][16];
  uint64_t deposit[2][32];  // the count of the exchange each lane last deposited for
  uint64_t count[32];       // exchanges each lane has made
  std::vector<Fiber*> waiters;
};

struct Block {
  const char* kernel = "";
  const std::function<void()>* body = nullptr;
  std::vector<Fiber*> fibers;   // in launch order (linear thread index)
  std::deque<Fiber*> runnable;  // threads to resume, in order (first: all, shuffled)
  std::vector<Fiber*> waiters;  // at the block barrier
  bool reverse = false;         // released waiters resume in alternating order
  std::vector<Warp> warps;
  int live = 0;
  int arrived = 0;  // at the block barrier
  unsigned generation = 0;  // block barriers released so far
  int count_acc = 0, count_result = 0;
  Fiber* current = nullptr;
  void* sched_sp = nullptr;
  void* sched_race = nullptr;  // the scheduler's (the host thread's) TSan fiber
  std::vector<unsigned char> dyn_smem;
#ifdef SPPO_EMU_ASAN
  void* fake_stack = nullptr;
  const void* sched_bottom = nullptr;
  std::size_t sched_size = 0;
#endif
};

Block* g_block = nullptr;
std::vector<Fiber*> g_pool;  // fibers (and their stacks) reused across launches

// The racecheck build's sync objects (emu/race_annotations.h): only their addresses matter. A
// barrier's arrivals release into the slot of its generation and its departures acquire from it;
// four slots, since a thread that arrives at the next barrier (a later slot) may do so before
// every thread released from this one has resumed (and acquired).
struct RaceSync {
  char block_start, block_end;
  char barrier[4];
  char warp[32][4];
} g_sync;

[[noreturn]] void fail_here(const char* what) {
  Block* b = g_block;
  if (b && b->current) {
    const Fiber* f = b->current;
    std::fprintf(stderr,
                 "sppo CUDA emulator: %s\n  kernel %s, block (%u, %u, %u), thread (%u, %u, %u)\n", what, b->kernel,
                 blockIdx.x, blockIdx.y, blockIdx.z, f->tid.x, f->tid.y, f->tid.z);
  } else {
    std::fprintf(stderr, "sppo CUDA emulator: %s\n", what);
  }
  std::fflush(stderr);
  std::abort();
}

Fiber* new_fiber() {
  Fiber* f = new Fiber;
  const std::size_t page = 4096;
  void* m = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) fail_here("cannot map a fiber stack");
  mprotect(m, page, PROT_NONE);  // a guard page: a stack overflow faults instead of corrupting
  f->stack = static_cast<char*>(m) + page;
  static unsigned made = 0;
  f->skew = (made % 61) * 1088 + (made % 8) * 64;
  ++made;
  f->race = race::new_fiber();
  return f;
}

void switch_to_scheduler(Fiber* f) {
  Block* b = g_block;
  race::switch_to(b->sched_race);
#ifdef SPPO_EMU_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(f->done ? nullptr : &fake, b->sched_bottom, b->sched_size);
  sppo_emu_switch(&f->sp, b->sched_sp);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
  sppo_emu_switch(&f->sp, b->sched_sp);
#endif
}

bool try_release(Warp& w);
bool try_release(Block* b);

// A fiber's first frame: runs the kernel body, marks the thread exited, releases what it was
// the last one missing from, and never returns.
void fiber_main() {
#ifdef SPPO_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &g_block->sched_bottom, &g_block->sched_size);
#endif
  Block* b = g_block;
  Fiber* f = b->current;
  race::acquire(&g_sync.block_start);
  (*b->body)();
  race::release(&g_sync.block_end);
  {
    race::Quiet quiet;
    f->done = true;
    --b->live;
    Warp& w = b->warps[f->warp];
    w.live &= ~(1u << f->lane);
    // An exited thread does not hold a barrier (CUDA: the non-exited threads named in the mask must
    // arrive): the others may now be all it waits for.
    if (w.arrived) try_release(w);
    if (b->arrived > 0) try_release(b);
  }
  switch_to_scheduler(f);
  __builtin_unreachable();
}

void init_stack(Fiber* f) {
#ifdef SPPO_EMU_ASAN
  // A finished fiber never returned from fiber_main: its frame's redzones are still poisoned.
  __asan_unpoison_memory_region(f->stack, kStackBytes);
#endif
  // The stack top, 16-byte aligned: [entry address][zero return address] so that `ret` in
  // sppo_emu_switch enters fiber_main with the stack aligned as after a call.
  uintptr_t top = (reinterpret_cast<uintptr_t>(f->stack) + kStackBytes - f->skew) & ~uintptr_t{15};
  uint64_t* sp = reinterpret_cast<uint64_t*>(top);
  *--sp = 0;                                            // fiber_main's return address (never used)
  *--sp = reinterpret_cast<uint64_t>(&fiber_main);      // popped by ret
  for (int i = 0; i < 6; ++i) *--sp = 0;                // rbp rbx r12 r13 r14 r15
  f->sp = sp;
}

// Makes a barrier's waiters runnable, in alternating order (so neither end of the block always
// resumes first).
void release(std::vector<Fiber*>& waiters) {
  Block* b = g_block;
  if (b->reverse) std::reverse(waiters.begin(), waiters.end());
  b->reverse = !b->reverse;
  for (Fiber* w : waiters) {
    b->runnable.push_back(w);
  }
  waiters.clear();
}

// Releases the warp barrier if every live lane of its mask has arrived.
bool try_release(Warp& w) {
  const unsigned need = w.mask & w.live;
  if ((w.arrived & need) != need) return false;
  w.arrived = 0;
  ++w.generation;
  release(w.waiters);
  return true;
}

// Releases the block barrier if every live thread has arrived; its vote count becomes the result.
bool try_release(Block* b) {
  if (b->arrived != b->live) return false;
  b->arrived = 0;
  ++b->generation;
  b->count_result = b->count_acc;
  b->count_acc = 0;
  release(b->waiters);
  return true;
}

// Parks the calling thread on `waiters` until its barrier releases.
void wait_on(std::vector<Fiber*>& waiters) {
  Fiber* f = g_block->current;
  waiters.push_back(f);
  switch_to_scheduler(f);
}

// A race report names the two threads by their fibers: block, thread and kernel, in that order,
// as TSan keeps 63 characters of a name (the kernel is in the report's stacks too).
void name_for_reports(Fiber* f, const char* kernel) {
  char name[160];
  std::snprintf(name, sizeof name, "block (%u,%u,%u) thread (%u,%u,%u) kernel %s", blockIdx.x, blockIdx.y, blockIdx.z,
                f->tid.x, f->tid.y, f->tid.z, kernel);
  race::name_fiber(f->race, name);
}

uint64_t seed() { return env_number("SPPO_EMU_SEED", 0x5eed5eedULL, 0, ~uint64_t{0}); }

}  // namespace

// ---- the device-language entry points -----------------------------------------------------------
void fault(const char* what) { fail_here(what); }

int lane_id() {
  if (!g_block) fail_here("a warp intrinsic called outside a kernel");
  return g_block->current->lane;
}

void* dynamic_shared_base() {
  if (!g_block) fail_here("dynamic shared memory used outside a kernel");
  return g_block->dyn_smem.data();
}

void block_barrier() { block_barrier_count(0); }

int block_barrier_count(int predicate) {
  race::Quiet quiet;
  Block* b = g_block;
  if (!b) fail_here("__syncthreads called outside a kernel");
  Warp& w = b->warps[b->current->warp];
  if (w.arrived && (w.mask & (1u << b->current->lane))) fail_here("__syncthreads while lanes of this warp wait at a warp barrier (divergent synchronisation)");
  b->count_acc += predicate != 0;
  ++b->arrived;
  const char* sync = &g_sync.barrier[b->generation & 3];
  race::release(sync);
  if (!try_release(b)) wait_on(b->waiters);
  race::acquire(sync);
  return b->count_result;
}

void warp_barrier(unsigned mask) {
  race::Quiet quiet;
  Block* b = g_block;
  if (!b) fail_here("a warp intrinsic called outside a kernel");
  Fiber* f = b->current;
  Warp& w = b->warps[f->warp];
  const unsigned me = 1u << f->lane;
  if (!(mask & me)) fail_here("a warp intrinsic whose mask does not name the calling lane");
  if (w.arrived == 0) {
    w.mask = mask;
  } else if (w.mask != mask) {
    fail_here("lanes of one warp synchronise with different masks");
  }
  w.arrived |= me;
  const char* sync = &g_sync.warp[f->warp][w.generation & 3];
  race::release(sync);
  if (!try_release(w)) wait_on(w.waiters);
  race::acquire(sync);
}

namespace {
// Deposits `bytes` of `value` as the calling lane's next exchange, waits for the lanes of `mask`,
// and returns that exchange's count (its slots: w.slot[count & 1], valid where w.deposit matches).
uint64_t deposit_and_wait(unsigned mask, const void* value, int bytes, Warp** warp) {
  Block* b = g_block;
  if (!b) fail_here("a warp intrinsic called outside a kernel");
  Fiber* f = b->current;
  Warp& w = b->warps[f->warp];
  const uint64_t k = ++w.count[f->lane];
  std::memcpy(w.slot[k & 1][f->lane], value, static_cast<std::size_t>(bytes));
  w.deposit[k & 1][f->lane] = k;
  warp_barrier(mask);
  *warp = &w;
  return k;
}
}  // namespace

void warp_exchange(unsigned mask, const void* value, int bytes, int src, void* out) {
  race::Quiet quiet;
  Warp* w = nullptr;
  const uint64_t k = deposit_and_wait(mask, value, bytes, &w);
  if (src >= 0 && src < 32 && (mask & (1u << src)) && w->deposit[k & 1][src] == k) {
    std::memcpy(out, w->slot[k & 1][src], static_cast<std::size_t>(bytes));
  } else {
    std::memset(out, 0xff, static_cast<std::size_t>(bytes));  // undefined on a GPU: poison
  }
}

unsigned warp_ballot(unsigned mask, bool predicate) {
  race::Quiet quiet;
  Warp* w = nullptr;
  const unsigned char p = predicate;
  const uint64_t k = deposit_and_wait(mask, &p, 1, &w);
  unsigned r = 0;
  for (int l = 0; l < 32; ++l)
    if ((mask & (1u << l)) && w->deposit[k & 1][l] == k && w->slot[k & 1][l][0]) r |= 1u << l;
  return r;
}

// ---- running a grid ------------------------------------------------------------------------------
void run_grid(const char* name, dim3 grid, dim3 block, std::size_t smem, const std::function<void()>& body) {
  if (g_block) fail_here("a kernel launched from inside a kernel (dynamic parallelism is not emulated)");
  race::Quiet quiet;  // the host's side of the bookkeeping; its release / acquire still order
  const int n = static_cast<int>(block.x * block.y * block.z);
  while (static_cast<int>(g_pool.size()) < n) g_pool.push_back(new_fiber());

  Block b;
  b.sched_race = race::current_fiber();
  b.kernel = name;
  b.body = &body;
  b.fibers.assign(g_pool.begin(), g_pool.begin() + n);
  b.warps.resize(static_cast<std::size_t>((n + 31) / 32));
  b.dyn_smem.resize(smem + 16);

  const uint64_t blocks = uint64_t{grid.x} * grid.y * grid.z;
  std::vector<uint64_t> block_order(blocks);
  for (uint64_t i = 0; i < blocks; ++i) block_order[i] = i;
  static std::mt19937_64 rng(seed());
  std::shuffle(block_order.begin(), block_order.end(), rng);

  blockDim = block;
  gridDim = grid;
  g_block = &b;
  for (uint64_t lin : block_order) {
    blockIdx = {static_cast<unsigned>(lin % grid.x), static_cast<unsigned>((lin / grid.x) % grid.y),
                static_cast<unsigned>(lin / (uint64_t{grid.x} * grid.y))};
    for (int t = 0; t < n; ++t) {
      Fiber* f = b.fibers[t];
      f->tid = {static_cast<unsigned>(t % block.x), static_cast<unsigned>((t / block.x) % block.y),
                static_cast<unsigned>(t / (block.x * block.y))};
      f->lane = t % 32;
      f->warp = t / 32;
      f->done = false;
      init_stack(f);
      if (race::kOn) name_for_reports(f, name);
    }
    for (Warp& w : b.warps) {
      w = Warp{};
    }
    for (int t = 0; t < n; ++t) b.warps[static_cast<std::size_t>(t / 32)].live |= 1u << (t % 32);
    b.live = n;
    b.arrived = b.count_acc = b.count_result = 0;
    std::memset(b.dyn_smem.data(), 0xff, b.dyn_smem.size());  // uninitialised shared memory: NaN

    b.runnable.assign(b.fibers.begin(), b.fibers.end());
    std::shuffle(b.runnable.begin(), b.runnable.end(), rng);
    b.waiters.clear();
    b.reverse = false;
    race::release(&g_sync.block_start);
    while (!b.runnable.empty()) {
      Fiber* f = b.runnable.front();
      b.runnable.pop_front();
      b.current = f;
      threadIdx = f->tid;
      race::switch_to(f->race);
#ifdef SPPO_EMU_ASAN
      __sanitizer_start_switch_fiber(&b.fake_stack, f->stack, kStackBytes);
      sppo_emu_switch(&b.sched_sp, f->sp);
      __sanitizer_finish_switch_fiber(b.fake_stack, nullptr, nullptr);
#else
      sppo_emu_switch(&b.sched_sp, f->sp);
#endif
    }
    b.current = nullptr;
    race::acquire(&g_sync.block_end);
    if (b.live > 0) {
      std::string who;
      for (Fiber* f : b.fibers)
        if (!f->done && who.size() < 200)
          who += " (" + std::to_string(f->tid.x) + "," + std::to_string(f->tid.y) + "," + std::to_string(f->tid.z) + ")";
      std::fprintf(stderr, "sppo CUDA emulator: deadlock in kernel %s, block (%u, %u, %u): %d threads wait at a barrier "
                   "the others never reach; waiting:%s\n", name, blockIdx.x, blockIdx.y, blockIdx.z, b.live, who.c_str());
      std::abort();
    }
  }
  g_block = nullptr;
}

}  // namespace sppo_emu
