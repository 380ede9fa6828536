// SPPO_BENCH_SMOKE=1: a benchmark's calibrations (copy bandwidth, matmul rate, the random chunk
// that fills weights) at toy sizes, so that it runs to the end on the CUDA emulator: the emulated
// build's bench_smoke_* tests (native/emu/emulated_cuda.cmake) run gpu-check.sh's benchmark code
// paths before a GPU session spends minutes on them. Its figures then mean nothing, and it says so.
#pragma once
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sppo_bench {

inline bool smoke_run() {
  const char* e = std::getenv("SPPO_BENCH_SMOKE");
  return e && std::strcmp(e, "1") == 0;
}

// `full` normally, `toy` in a smoke run.
template <typename T>
T full_or_toy(T full, T toy) {
  return smoke_run() ? toy : full;
}

inline void say_if_smoke() {
  if (smoke_run()) std::printf("SPPO_BENCH_SMOKE=1: calibrations at toy sizes; no figure below means anything\n");
}

}  // namespace sppo_bench
