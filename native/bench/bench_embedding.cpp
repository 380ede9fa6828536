// Benchmark of the embedding op (kernels/embedding.h) on the CPU backend: the lookup and the
// backward's deterministic scatter-add.
//   bench_embedding [--vocab 32000] [--hidden 1024] [--rows 4096] [common flags, see --help]
// Floor: the bytes moved at the copy bandwidth. Forward reads and writes rows * hidden values;
// backward reads dout and reads and writes the table rows it touches (ids drawn at random).
#include "bench_common.h"

using namespace sppo;
using namespace sppo_bench;

int main(int argc, char** argv) {
  return run_main("bench_embedding", [&] {
    Args a(argc, argv, "usage: bench_embedding [--vocab 32000] [--hidden 1024] [--rows 4096]",
           "Times the embedding lookup and its backward scatter-add;"
           " the floor is the bytes moved at the copy bandwidth.");
    const int64_t V = a.integer("--vocab", 32000), H = a.integer("--hidden", 1024), n = a.integer("--rows", 4096);
    a.finish(10);
    const Floors f = measure_floors("embedding (forward lookup, backward scatter-add)");
    auto be = backend_for(Device::CPU);
    std::vector<float> table(V * H, 0.25f), out(n * H), dout = values(n * H), dtable(V * H, 0.f);
    std::vector<int32_t> ids(n);
    uint64_t s = 7;
    for (auto& id : ids) s = s * 6364136223846793005ull + 1442695040888963407ull, id = int32_t((s >> 33) % V);
    const double row_bytes = 4.0 * double(n) * double(H);
    const std::string shape = dims({n, H}) + " of V=" + std::to_string(V);
    double ms = time_ms(a, [&] { be->embedding_forward(f32(table), V, H, i32(ids), n, f32(out)); });
    row(f, "embedding_forward", shape, ms, Bound::Memory, 2 * row_bytes);
    ms = time_ms(a, [&] { be->embedding_backward(f32(dout), i32(ids), n, V, H, f32(dtable)); });
    row(f, "embedding_backward", shape, ms, Bound::Memory, 3 * row_bytes);
  });
}
