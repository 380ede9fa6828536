// Benchmark of the SPPO loss family (kernels/sppo_loss.h) on the CPU backend: forward, backward
// and summary of one batch of pairs. Real batches are small (64 pairs); the default is large so
// that the time is measurable.
//   bench_sppo_loss [--batch 1048576] [common flags, see --help]
// Floor: the bytes moved at the copy bandwidth: the four log-probability columns and the loss's
// probability columns read, losses, two gradients and two rewards written.
#include "bench_common.h"

using namespace sppo;
using namespace sppo_bench;

int main(int argc, char** argv) {
  return run_main("bench_sppo_loss", [&] {
    Args a(argc, argv, "usage: bench_sppo_loss [--batch 1048576]",
           "Times every loss type on one batch of pairs;"
           " the floor is the bytes moved at the copy bandwidth.");
    const int64_t B = a.integer("--batch", 1 << 20);
    a.finish(10);
    const Floors f = measure_floors("sppo_loss (fp32 in, float64 math)");
    auto be = backend_for(Device::CPU);
    std::vector<float> pc = values(B, 1), pr = values(B, 2), rc = values(B, 3), rr = values(B, 4), p(B, 0.6f),
                       pw(B, 0.7f), pl(B, 0.3f), losses(B), gc(B), gr(B), rwc(B), rwr(B);
    std::vector<double> summary(5);
    for (LossType t : kLossTypes) {
      LossTensors in{f32(pc), f32(pr), f32(rc), f32(rr), Tensor(), Tensor(), Tensor()};
      int probs = 0;
      if (t == LossType::SPPO_SINGLE) in.chosen_probs = f32(p), probs = 1;
      if (t == LossType::SPPO) in.chosen_probs_win = f32(pw), in.chosen_probs_lose = f32(pl), probs = 2;
      LossResultTensors out{f32(losses), f32(gc), f32(gr), f32(rwc), f32(rwr), f64(summary), 1.0};
      const double ms = time_ms(a, [&] { be->sppo_loss(t, 1e-3, B, in, out); });
      row(f, std::string("sppo_loss ") + loss_type_name(t), std::to_string(B) + " pairs", ms, Bound::Memory,
          4.0 * double(B) * (4 + probs + 5));
    }
  });
}
