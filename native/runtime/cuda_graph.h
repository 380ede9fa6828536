// One captured sequence of stream work, replayed as a CUDA graph (CUDA builds only; used by the
// CUDA backend's run_step, backend/backend.h). capture() records what a function queues on a
// stream and instantiates it; launch() replays it on a stream. Errors carry the CUDA message.
#pragma once
#ifdef SPPO_WITH_CUDA
#include <functional>
#include <string>

namespace sppo::cuda {

class Graph {
 public:
  Graph() = default;
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Records what `queue` puts on `stream` (this thread's unsafe calls, such as a synchronisation
  // or a blocking copy, fail the capture) and instantiates it. Returns "" on success, else why it
  // failed: the CUDA message, or what `queue` threw. On failure the stream is out of capture mode,
  // nothing recorded has run, and the graph stays empty.
  std::string capture(void* stream, const std::function<void()>& queue);
  // Queues one replay on `stream`; throws sppo::Error with the CUDA message.
  void launch(void* stream);
  bool ready() const { return exec_ != nullptr; }
  void reset();

 private:
  void* exec_ = nullptr;  // a cudaGraphExec_t
};

}  // namespace sppo::cuda
#endif
