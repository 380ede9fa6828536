// Graph (runtime/cuda_graph.h).
#ifdef SPPO_WITH_CUDA
#include "runtime/cuda_graph.h"

#include <cuda_runtime.h>

#include <exception>

#include "runtime/cuda_check.h"

namespace sppo::cuda {

namespace {
std::string cuda_message(const char* what, cudaError_t e) {
  return std::string(what) + ": " + cudaGetErrorString(e);
}
}  // namespace

Graph::~Graph() { reset(); }

void Graph::reset() {
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  exec_ = nullptr;
}

std::string Graph::capture(void* stream, const std::function<void()>& queue) {
  reset();
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  // Thread-local mode: another thread's calls (the communication stream's) cannot fail it.
  cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return cuda_message("cudaStreamBeginCapture", e);
  }
  std::string why;
  try {
    queue();
  } catch (const std::exception& ex) {
    why = ex.what();
  } catch (...) {
    why = "an unknown exception";
  }
  cudaGraph_t g = nullptr;
  e = cudaStreamEndCapture(s, &g);  // always: the stream must leave capture mode
  if (why.empty() && e != cudaSuccess) why = cuda_message("cudaStreamEndCapture", e);
  cudaGetLastError();  // capture errors are not sticky; clear them for the eager launches after
  if (!why.empty()) {
    if (g) cudaGraphDestroy(g);
    return why;
  }
  cudaGraphExec_t exec = nullptr;
  e = cudaGraphInstantiate(&exec, g, 0);
  cudaGraphDestroy(g);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return cuda_message("cudaGraphInstantiate", e);
  }
  exec_ = exec;
  return "";
}

void Graph::launch(void* stream) {
  SPPO_CHECK(exec_ != nullptr, "CUDA graph: launch of a graph that was not captured");
  check_cuda(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), static_cast<cudaStream_t>(stream)),
             "cudaGraphLaunch");
}

}  // namespace sppo::cuda
#endif
