// Benchmark of causal attention (kernels/attention.h), forward and backward, with grouped kv heads
// and no padding, on the CPU backend or (--device cuda) the CUDA backend.
//   bench_attention [--batch 2] [--seq 256] [--heads 8] [--kv-heads 4] [--head-dim 64]
//                   [--device cpu|cuda] [--dtype f32|bf16 (cuda)] [common flags, see --help]
// Floor (CPU): the FLOPs at the fused multiply-add peak measured in the same run. Forward: per
// row t and head, 2 hd (t + 1) for the scores and as many for the values, 2 B nh hd T (T + 1) in
// all; backward recomputes the scores and forms dq, dk, dv and dout . v: 2.5 times that.
// Exponentials are not counted. On CUDA: device time between events (bench_cuda.h), no floor.
#include <cmath>

#include "bench_common.h"
#include "bench_cuda.h"

using namespace sppo;
using namespace sppo_bench;

int main(int argc, char** argv) {
  return run_main("bench_attention", [&] {
    Args a(argc, argv,
           "usage: bench_attention [--batch 2] [--seq 256] [--heads 8] [--kv-heads 4] [--head-dim 64]"
           " [--device cpu|cuda] [--dtype f32|bf16]",
           "Times causal attention forward and backward (no padding);"
           " the floor (CPU) is the FLOPs at the FMA peak; on CUDA, device time between events.");
    const int64_t B = a.integer("--batch", 2), T = a.integer("--seq", 256), nh = a.integer("--heads", 8),
                  nkv = a.integer("--kv-heads", 4), hd = a.integer("--head-dim", 64);
    const bool cuda = wants_cuda(a);
    const DType dt = gpu_dtype(a, cuda);
    a.finish(cuda ? 20 : 3, cuda ? 3 : 1);
    if (nh % nkv) fail("--heads (", nh, ") must be a multiple of --kv-heads (", nkv, ")");
    const AttnShape s{B, T, nh, nkv, hd, 1.0 / std::sqrt(double(hd))};
    const int64_t N = B * T;
    std::vector<float> q = values(N * nh * hd, 1), k = values(N * nkv * hd, 2), v = values(N * nkv * hd, 3),
                       out(N * nh * hd), lse(N * nh), dout = values(N * nh * hd, 4), dq(N * nh * hd),
                       dk(N * nkv * hd), dv(N * nkv * hd);
    std::vector<uint8_t> mask(N, 1);
    const double fwd = 2.0 * double(B) * double(nh) * double(hd) * double(T) * double(T + 1);
    const std::string shape = dims({B, T}) + " h" + std::to_string(nh) + "/" + std::to_string(nkv) + " d" +
                              std::to_string(hd) + (dt == DType::BF16 ? " bf16" : "");
    if (cuda) {
      print_cuda_header("attention (causal, GQA)");
      auto be = backend_for(Device::CUDA);
      const DeviceVec gq(be, q, dt), gk(be, k, dt), gv(be, v, dt), gm(be, mask, DType::U8), gout(be, out, dt),
          glse(be, lse, DType::F32), gdo(be, dout, dt), gdq(be, dq, dt), gdk(be, dk, dt), gdv(be, dv, dt);
      double ms = cuda_time_ms(a, *be, [&] {
        be->attention_forward(s, gq.t(), gk.t(), gv.t(), gm.t(), gout.t(), glse.t());
      });
      cuda_row("attention_forward", shape, ms, Bound::Compute, fwd);
      ms = cuda_time_ms(a, *be, [&] {  // from the forward's out and lse
        be->attention_backward(s, gq.t(), gk.t(), gv.t(), gm.t(), gout.t(), glse.t(), gdo.t(), gdq.t(), gdk.t(),
                               gdv.t());
      });
      cuda_row("attention_backward", shape, ms, Bound::Compute, 2.5 * fwd);
      return;
    }
    const Floors f = measure_floors("attention (fp32, causal, GQA)");
    auto be = backend_for(Device::CPU);
    double ms = time_ms(a, [&] { be->attention_forward(s, f32(q), f32(k), f32(v), u8(mask), f32(out), f32(lse)); });
    row(f, "attention_forward", shape, ms, Bound::Compute, fwd);
    ms = time_ms(a, [&] {
      be->attention_backward(s, f32(q), f32(k), f32(v), u8(mask), f32(out), f32(lse), f32(dout), f32(dq), f32(dk),
                             f32(dv));
    });
    row(f, "attention_backward", shape, ms, Bound::Compute, 2.5 * fwd);
  });
}
