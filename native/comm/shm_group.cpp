// ShmGroup (comm/shm_group.h).
#include "comm/shm_group.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <new>
#include <sstream>

#include "core/dtype.h"
#include "core/error.h"

namespace sppo::comm {
namespace {

constexpr uint64_t kMagic = 0x31'6d'68'73'6f'70'70'73ull;  // "spposhm1"
constexpr uint32_t kVersion = 1;
constexpr int kMaxWorld = 4096;
constexpr double kBeatEvery = 0.1;      // seconds between heartbeats
constexpr double kCheckEvery = 0.05;    // seconds between liveness checks while waiting

static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<int64_t>::is_always_lock_free &&
                  std::atomic<uint32_t>::is_always_lock_free,
              "the host communicator needs lock-free atomics in shared memory");

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

void nap(double seconds) {
  timespec ts{static_cast<time_t>(seconds), static_cast<long>((seconds - static_cast<double>(static_cast<time_t>(seconds))) * 1e9)};
  nanosleep(&ts, nullptr);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

struct DescSlot {
  std::atomic<uint32_t> kind{0}, dtype{0};
  std::atomic<int64_t> count{0};
  std::atomic<int32_t> root{-1};
  std::atomic<int64_t> op{-1};
};

enum : uint32_t { kDetached = 0, kAttached = 1, kLeft = 2 };

struct alignas(64) RankState {
  std::atomic<uint64_t> arrived{0};
  std::atomic<uint64_t> heartbeat{0};
  std::atomic<int32_t> pid{0};
  std::atomic<uint32_t> state{kDetached};
  DescSlot desc[2];  // by the parity of the collective number: a fast rank may be one ahead
};

std::string describe(const OpDesc& d) {
  std::ostringstream os;
  os << op_kind_name(d.kind);
  if (d.kind != OpKind::Barrier) os << "(" << dtype_name(static_cast<DType>(d.dtype)) << " x " << d.count << ")";
  if (d.kind == OpKind::Broadcast) os << " from rank " << d.root;
  return os.str();
}

std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

// The process is gone: no such pid, or a zombie its parent has not reaped yet.
bool process_gone(int32_t pid) {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0) return errno == ESRCH;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  FILE* f = std::fopen(path, "r");
  if (!f) return false;
  char buf[512] = {};
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const char* close_paren = std::strrchr(buf, ')');  // "pid (comm) S ..."
  return n > 0 && close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z';
}

}  // namespace

const char* op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::AllReduce: return "all_reduce";
    case OpKind::ReduceScatter: return "reduce_scatter";
    case OpKind::AllGather: return "all_gather";
    case OpKind::Broadcast: return "broadcast";
    case OpKind::Barrier: return "barrier";
  }
  return "collective";
}

struct ShmGroup::Header {
  std::atomic<uint64_t> magic{0};
  uint32_t version = kVersion;
  int32_t world = 0;
  uint64_t slot_bytes = 0;
  uint64_t data_offset = 0;
  std::atomic<uint32_t> abort_state{0};  // 0 none, 1 being written, 2 published
  int32_t abort_rank = -1;
  char abort_msg[2048] = {};
  RankState ranks[1];  // world of them
};

namespace {
std::size_t header_bytes(int world) {
  return align_up(sizeof(ShmGroup::Header) + sizeof(RankState) * static_cast<std::size_t>(world), 4096);
}
}  // namespace

ShmGroup::ShmGroup(const ShmGroupOptions& o) : o_(o) {
  SPPO_CHECK(o_.world >= 1 && o_.world <= kMaxWorld, "host communicator: world size must be in [1, ", kMaxWorld, "] (got ", o_.world, ")");
  SPPO_CHECK(o_.rank >= 0 && o_.rank < o_.world, "host communicator: rank ", o_.rank, " is not in [0, ", o_.world, ")");
  SPPO_CHECK(o_.name.size() > 1 && o_.name.size() < 200 && o_.name[0] == '/' && o_.name.find('/', 1) == std::string::npos,
             "host communicator: name must look like '/sppo-...' (got '", o_.name, "')");
  SPPO_CHECK(o_.slot_bytes >= 4096 && o_.slot_bytes % 64 == 0, "host communicator: slot size must be >= 4096 and a multiple of 64");
  SPPO_CHECK(o_.timeout_s > 0 && o_.heartbeat_s > 0, "host communicator: timeouts must be > 0");
  const std::size_t hbytes = header_bytes(o_.world);
  map_bytes_ = hbytes + o_.slot_bytes * static_cast<std::size_t>(o_.world);
  const double deadline = now_s() + o_.timeout_s;
  if (o_.rank == 0) {
    fd_ = shm_open(o_.name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd_ < 0) fail("host communicator: cannot create shared memory ", o_.name, ": ", std::strerror(errno));
    // Reserve the pages now: on a full /dev/shm a write would otherwise end the process with SIGBUS.
    const int e = posix_fallocate(fd_, 0, static_cast<off_t>(map_bytes_));
    if (e != 0) {
      close(fd_);
      shm_unlink(o_.name.c_str());
      fail("host communicator: cannot reserve ", map_bytes_ >> 20, " MiB of shared memory in /dev/shm: ", std::strerror(e),
           " (containers: raise --shm-size)");
    }
  } else {
    for (;;) {
      fd_ = shm_open(o_.name.c_str(), O_RDWR, 0600);
      if (fd_ >= 0) break;
      if (errno != ENOENT) fail("host communicator: cannot open shared memory ", o_.name, ": ", std::strerror(errno));
      if (now_s() > deadline)
        fail("host communicator: rank 0 did not create ", o_.name, " within ", o_.timeout_s, " s (rank ", o_.rank, " waited)");
      nap(0.002);
    }
    for (;;) {  // rank 0 may not have sized it yet
      struct stat st{};
      if (fstat(fd_, &st) != 0) fail("host communicator: fstat ", o_.name, ": ", std::strerror(errno));
      if (static_cast<std::size_t>(st.st_size) >= map_bytes_) break;
      if (st.st_size > 0 && static_cast<std::size_t>(st.st_size) >= hbytes && now_s() > deadline) break;
      if (now_s() > deadline) fail("host communicator: ", o_.name, " was not sized by rank 0 within ", o_.timeout_s, " s");
      nap(0.002);
    }
  }
  map_ = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    const std::string err = std::strerror(errno);
    close(fd_);
    if (o_.rank == 0) shm_unlink(o_.name.c_str());
    fail("host communicator: cannot map ", o_.name, ": ", err);
  }
  h_ = static_cast<Header*>(map_);
  if (o_.rank == 0) {
    new (h_) Header();
    for (int r = 0; r < o_.world; ++r) new (&h_->ranks[r]) RankState();
    h_->world = o_.world;
    h_->slot_bytes = o_.slot_bytes;
    h_->data_offset = hbytes;
    h_->magic.store(kMagic, std::memory_order_release);
  } else {
    while (h_->magic.load(std::memory_order_acquire) != kMagic) {
      if (now_s() > deadline) {
        release();
        fail("host communicator: ", o_.name, " was not initialised by rank 0 within ", o_.timeout_s, " s");
      }
      nap(0.002);
    }
    if (h_->version != kVersion || h_->world != o_.world || h_->slot_bytes != o_.slot_bytes) {
      std::ostringstream os;
      os << "host communicator: " << o_.name << " was made by rank 0 for " << h_->world << " ranks with "
         << h_->slot_bytes << "-byte slots (version " << h_->version << "), but rank " << o_.rank << " expects "
         << o_.world << " ranks, " << o_.slot_bytes << "-byte slots (version " << kVersion << ")";
      h_ = nullptr;  // not ours to mark as left
      release();
      throw Error(os.str());
    }
  }
  seen_beat_.assign(static_cast<size_t>(o_.world), 0);
  seen_at_.assign(static_cast<size_t>(o_.world), now_s());
  RankState& me = h_->ranks[o_.rank];
  me.pid.store(static_cast<int32_t>(getpid()), std::memory_order_relaxed);
  me.state.store(kAttached, std::memory_order_release);
  heartbeat_ = std::thread([this] {
    RankState& self = h_->ranks[o_.rank];
    while (!stop_.load(std::memory_order_relaxed)) {
      self.heartbeat.fetch_add(1, std::memory_order_relaxed);
      nap(kBeatEvery);
    }
  });
  try {
    wait_attached();
  } catch (...) {
    release();
    throw;
  }
  if (o_.rank == 0) {
    shm_unlink(o_.name.c_str());  // every rank has it open: nothing is left behind after exit
    unlinked_ = true;
  }
}

ShmGroup::~ShmGroup() { release(); }

void ShmGroup::release() {
  stop_.store(true);
  if (heartbeat_.joinable()) heartbeat_.join();
  if (h_) h_->ranks[o_.rank].state.store(kLeft, std::memory_order_release);
  if (map_) munmap(map_, map_bytes_);
  map_ = nullptr;
  h_ = nullptr;
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  if (o_.rank == 0 && !unlinked_) {
    shm_unlink(o_.name.c_str());
    unlinked_ = true;
  }
}

unsigned char* ShmGroup::slot(int r) const {
  return static_cast<unsigned char*>(map_) + h_->data_offset + static_cast<std::size_t>(r) * o_.slot_bytes;
}

std::string ShmGroup::who(int r) const {
  std::ostringstream os;
  os << "rank " << r;
  const int32_t pid = h_->ranks[r].pid.load(std::memory_order_relaxed);
  if (pid > 0) os << " (pid " << pid << ")";
  return os.str();
}

void ShmGroup::abort(const std::string& why) {
  if (!h_) return;
  uint32_t expected = 0;
  if (h_->abort_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
    h_->abort_rank = o_.rank;
    std::strncpy(h_->abort_msg, why.c_str(), sizeof(h_->abort_msg) - 1);
    h_->abort_state.store(2, std::memory_order_release);
  }
}

void ShmGroup::check() const {
  if (h_->abort_state.load(std::memory_order_acquire) != 2) return;
  if (h_->abort_rank == o_.rank) throw Error(h_->abort_msg);
  std::ostringstream os;
  os << "rank " << h_->abort_rank << " stopped the run: " << h_->abort_msg;
  throw Error(os.str());
}

void ShmGroup::fail_here(const std::string& msg) {
  abort(msg);
  check();
  throw Error(msg);  // not reached: check() throws the published reason (ours, or an earlier one)
}

void ShmGroup::wait_attached() {
  const double start = now_s();
  for (;;) {
    check();
    std::vector<int> missing;
    for (int r = 0; r < o_.world; ++r) {
      const uint32_t s = h_->ranks[r].state.load(std::memory_order_acquire);
      if (s == kLeft) fail_here(who(r) + " left host communicator " + o_.name + " while it was being set up");
      if (s != kAttached) missing.push_back(r);
    }
    if (missing.empty()) return;
    if (now_s() - start > o_.timeout_s) {
      std::ostringstream os;
      os << (missing.size() == 1 ? "rank " : "ranks ");
      for (size_t i = 0; i < missing.size(); ++i) os << (i ? ", " : "") << missing[i];
      os << " did not join host communicator " << o_.name << " within " << o_.timeout_s << " s (rank " << o_.rank
         << " waited)";
      fail_here(os.str());
    }
    nap(0.001);
  }
}

void ShmGroup::begin(int64_t op, const char* what, const OpDesc& d) {
  check();
  op_ = op;
  what_ = what;
  DescSlot& mine = h_->ranks[o_.rank].desc[op & 1];
  mine.kind.store(static_cast<uint32_t>(d.kind), std::memory_order_relaxed);
  mine.dtype.store(d.dtype, std::memory_order_relaxed);
  mine.count.store(d.count, std::memory_order_relaxed);
  mine.root.store(d.root, std::memory_order_relaxed);
  mine.op.store(op, std::memory_order_relaxed);
  arrive_and_wait();  // publishes the descriptor (release) and sees everyone's (acquire)
  for (int r = 0; r < o_.world; ++r) {
    const DescSlot& s = h_->ranks[r].desc[op & 1];
    OpDesc theirs;
    theirs.kind = static_cast<OpKind>(s.kind.load(std::memory_order_relaxed));
    theirs.dtype = s.dtype.load(std::memory_order_relaxed);
    theirs.count = s.count.load(std::memory_order_relaxed);
    theirs.root = s.root.load(std::memory_order_relaxed);
    const int64_t their_op = s.op.load(std::memory_order_relaxed);
    if (their_op != op || theirs.kind != d.kind || theirs.dtype != d.dtype || theirs.count != d.count ||
        theirs.root != d.root) {
      std::ostringstream os;
      os << "ranks disagree at collective #" << op << ": rank " << o_.rank << " called " << describe(d) << ", rank "
         << r << " called " << describe(theirs);
      if (their_op != op) os << " as its collective #" << their_op;
      os << " (every rank must run the same collectives in the same order)";
      fail_here(os.str());
    }
  }
}

void ShmGroup::phase() { arrive_and_wait(); }

void ShmGroup::arrive_and_wait() {
  ++phase_;
  h_->ranks[o_.rank].arrived.store(phase_, std::memory_order_release);
  const double start = now_s();
  double last_check = start;
  for (uint64_t spins = 0;; ++spins) {
    bool all = true;
    for (int r = 0; r < o_.world && all; ++r) all = h_->ranks[r].arrived.load(std::memory_order_acquire) >= phase_;
    if (all) return;
    check();
    if (spins < 2000) {
      cpu_relax();
      continue;
    }
    if (spins < 4000) {
      sched_yield();
      continue;
    }
    nap(0.0001);
    const double now = now_s();
    if (now - last_check < kCheckEvery) continue;
    last_check = now;
    std::vector<int> missing;
    for (int r = 0; r < o_.world; ++r) {
      if (h_->ranks[r].arrived.load(std::memory_order_acquire) >= phase_) continue;
      missing.push_back(r);
      std::ostringstream at;
      at << " while rank " << o_.rank << " waited for it in " << what_ << " #" << op_;
      if (h_->ranks[r].state.load(std::memory_order_acquire) == kLeft)
        fail_here(who(r) + " left the host communicator (closed it)" + at.str());
      const int32_t pid = h_->ranks[r].pid.load(std::memory_order_relaxed);
      if (process_gone(pid)) fail_here(who(r) + " exited" + at.str());
      const uint64_t beat = h_->ranks[r].heartbeat.load(std::memory_order_relaxed);
      if (beat != seen_beat_[static_cast<size_t>(r)]) {
        seen_beat_[static_cast<size_t>(r)] = beat;
        seen_at_[static_cast<size_t>(r)] = now;
      } else if (now - seen_at_[static_cast<size_t>(r)] > o_.heartbeat_s) {
        std::ostringstream os;
        os << who(r) << " stopped responding: no heartbeat for " << o_.heartbeat_s << " s" << at.str()
           << " (its process is stopped or frozen)";
        fail_here(os.str());
      }
    }
    if (now - start > o_.timeout_s) {
      std::ostringstream os;
      for (size_t i = 0; i < missing.size(); ++i) os << (i ? ", " : "") << who(missing[i]);
      os << (missing.size() == 1 ? " did" : " did") << " not reach " << what_ << " #" << op_ << " within " << o_.timeout_s
         << " s; rank " << o_.rank << " waited (the process is alive: it hangs, or is far behind; --dist-timeout sets the limit)";
      fail_here(os.str());
    }
  }
}

}  // namespace sppo::comm
