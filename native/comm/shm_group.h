// The processes of one host communicator and the shared memory they meet in (CONTRACT). Rank 0
// creates a POSIX shared-memory segment under the group's name (handed out by the rendezvous);
// the other ranks open it; it is unlinked as soon as every rank has attached, so nothing is left
// in /dev/shm even when the processes are killed. The segment holds a header (per rank: its pid,
// a heartbeat, the phase it has reached, the collective it is in) and one data slot per rank.
//
// Collectives are sequences of phases: a rank writes its slot, arrives, and waits until every
// rank has arrived before it reads the others' slots. While waiting it watches the ranks that
// have not arrived yet: one whose process is gone, whose heartbeat stopped (it was stopped or
// killed), that left the group, or that has not arrived within the timeout (it hangs) ends the
// wait with an error naming it, and the error is published in the header so that every other
// rank stops at once with the same message. abort() publishes a reason the same way.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sppo::comm {

struct ShmGroupOptions {
  std::string name;                          // "/sppo-..." (POSIX shm name)
  int rank = 0, world = 1;
  std::size_t slot_bytes = std::size_t{4} << 20;
  double timeout_s = 300;    // how long a rank waits for the slowest one at a phase (and to attach)
  double heartbeat_s = 10;   // a rank whose heartbeat has not moved for this long is declared gone
};

enum class OpKind : uint32_t { AllReduce = 1, ReduceScatter, AllGather, Broadcast, Barrier };
const char* op_kind_name(OpKind k);

// What a rank is about to do; every rank must announce the same for the same collective.
struct OpDesc {
  OpKind kind = OpKind::Barrier;
  uint32_t dtype = 0;
  int64_t count = 0;
  int32_t root = -1;
};

class ShmGroup {
 public:
  explicit ShmGroup(const ShmGroupOptions& o);  // creates or attaches, then waits for every rank
  ~ShmGroup();
  ShmGroup(const ShmGroup&) = delete;
  ShmGroup& operator=(const ShmGroup&) = delete;

  int rank() const { return o_.rank; }
  int world() const { return o_.world; }
  std::size_t slot_bytes() const { return o_.slot_bytes; }
  const std::string& name() const { return o_.name; }
  unsigned char* slot(int r) const;

  // Starts collective number `op` (counted from 0 by every rank): announces `d`, arrives at the
  // first phase, waits, and checks that every rank announced the same (else fails naming them).
  void begin(int64_t op, const char* what, const OpDesc& d);
  // Arrives at the next phase of the current collective and waits for every rank.
  void phase();
  // Publishes `why` (first reason wins) and makes every wait of every rank fail.
  void abort(const std::string& why);
  // Throws when the group was aborted (here or by a peer).
  void check() const;

 public:
  struct Header;

 private:
  void release();  // idempotent: heartbeat stopped, mapping and name released
  void arrive_and_wait();
  [[noreturn]] void fail_here(const std::string& msg);
  void wait_attached();
  std::string who(int r) const;

  ShmGroupOptions o_;
  int fd_ = -1;
  void* map_ = nullptr;
  std::size_t map_bytes_ = 0;
  Header* h_ = nullptr;
  bool unlinked_ = false;
  uint64_t phase_ = 0;       // phases this rank has arrived at
  int64_t op_ = -1;
  std::string what_ = "attach";
  std::thread heartbeat_;
  std::atomic<bool> stop_{false};
  // Local view of each peer's heartbeat: last value and when it last changed.
  std::vector<uint64_t> seen_beat_;
  std::vector<double> seen_at_;
};

}  // namespace sppo::comm
