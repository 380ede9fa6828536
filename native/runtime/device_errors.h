// Deferred device errors (CONTRACT): one 64-bit word in device memory per stream. A kernel that
// finds bad input (a label out of range, a non-finite logit) atomicMin's a packed
// (index << 24 | launch << 8 | code) into it and carries on without touching memory it should
// not; nothing synchronises. The host checks the word at step boundaries (check(), called by the
// backend's synchronize()): the launch's explainer, registered when it was queued, turns the code
// into the CPU backend's exact message (fetching the offending value from device memory, which
// the step still holds) and throws it. The lowest index of the earliest-registered... any reported
// error wins; one error is reported per check.
#pragma once
#ifdef SPPO_WITH_CUDA
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace sppo::cuda {

constexpr unsigned long long kNoError = ~0ull;

class DeviceErrors {
 public:
  using Explain = std::function<void(unsigned code, int64_t index)>;  // throws

  explicit DeviceErrors(void* stream);
  ~DeviceErrors();
  DeviceErrors(const DeviceErrors&) = delete;
  DeviceErrors& operator=(const DeviceErrors&) = delete;

  unsigned long long* word() const { return dev_; }
  // Registers how to explain a code of the next launch; returns the launch id kernels pack.
  unsigned expect(Explain explain);
  // Waits for the stream, reads the word, resets it; throws the explained error if one was set.
  void check();

  // CUDA graphs (runtime/cuda_graph.h): a captured launch carries the id expect() gave it at
  // capture. pending(): explainers registered since the last check. take_from(base): removes and
  // returns those from id `base` on (a capture's). replay(ex): before a replay, registers a
  // graph captured with ids 0.. again at the same ids; needs pending() == 0 (check() first).
  std::size_t pending() const { return explain_.size(); }
  std::vector<Explain> take_from(std::size_t base);
  void replay(const std::vector<Explain>& ex);

 private:
  void* stream_;
  unsigned long long* dev_ = nullptr;
  unsigned long long* host_ = nullptr;  // pinned
  std::vector<Explain> explain_;
};

}  // namespace sppo::cuda
#endif
