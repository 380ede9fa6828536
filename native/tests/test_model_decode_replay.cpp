// CUDA graph semantics emulated on the CPU: a backend that forwards every op to the CPU backend
// and implements run_step as a graph would. On a slot's first call it runs the step while
// recording each op with its arguments as they are then (pointers, shapes, scalars: what a
// capture bakes in); every later call replays that recording and does NOT run the step again,
// so a step whose launches depended on anything but fixed addresses and fixed shapes (a
// workspace that moved, a row count or split that changed, a host value read inside) would
// replay stale arguments and give different tokens. Any upload, download, copy, zero,
// allocation, synchronisation or sampler op queued inside a step is counted as a violation (none
// of them may live in a graph: inputs are uploaded before run_step). What is compared:
// generate() on this backend (decode buckets automatic, so on) against generate() on the plain
// CPU backend without buckets, bit for bit (tokens and log-probabilities), sampled and greedy,
// under budgets that split the call (joins, retirements, many replays per bucket); and the
// replays and captures actually happened.
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "backend/cpu_backend.h"
#include "model/generate.h"
#include "test_model_common.h"

using namespace sppo;
using model_test::random_tokens;

namespace {

class ReplayingBackend final : public Backend {
 public:
  explicit ReplayingBackend(std::shared_ptr<Backend> inner) : in_(std::move(inner)) {}
  int64_t captures = 0, replays = 0, violations = 0;

  struct Recording final : StepCapture {
    std::vector<std::function<void()>> ops;
    bool replays() const override { return true; }
  };
  bool captures_steps() const override { return true; }
  void run_step(std::unique_ptr<StepCapture>& slot, const std::function<void()>& step, const Tensor&,
                const char*) override {
    if (auto* r = dynamic_cast<Recording*>(slot.get())) {
      ++replays;
      for (auto& op : r->ops) op();
      return;
    }
    auto r = std::make_unique<Recording>();
    rec_ = &r->ops;
    step();
    rec_ = nullptr;
    ++captures;
    slot = std::move(r);
  }

  Device device() const override { return in_->device(); }
  const char* name() const override { return "cpu (graph replay emulation)"; }
  bool host_accessible() const override { return true; }
  void* allocate(std::size_t bytes) override { return bad(), in_->allocate(bytes); }
  void deallocate(void* p) noexcept override { in_->deallocate(p); }
  std::size_t available_memory() const override { return in_->available_memory(); }
  void upload(void* d, const void* s, std::size_t n) override { bad(), in_->upload(d, s, n); }
  void download(void* d, const void* s, std::size_t n) override { bad(), in_->download(d, s, n); }
  void copy(void* d, const void* s, std::size_t n) override { bad(), in_->copy(d, s, n); }
  void zero(void* d, std::size_t n) override { bad(), in_->zero(d, n); }
  void synchronize() override { bad(), in_->synchronize(); }

// Ops a decode step queues: run now, and recorded with their arguments when inside a capture.
#define SPPO_REPLAY(call)                                \
  do {                                                   \
    auto op = [=, b = in_.get()]() { b->call; };         \
    if (rec_) rec_->push_back(op);                       \
    op();                                                \
  } while (0)
  void embedding_forward(const Tensor& t, int64_t V, int64_t H, const Tensor& ids, int64_t n, const Tensor& out) override {
    SPPO_REPLAY(embedding_forward(t, V, H, ids, n, out));
  }
  void matmul(const Tensor& A, const Tensor& B, const Tensor& C, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
              bool acc) override {
    SPPO_REPLAY(matmul(A, B, C, M, N, K, ta, tb, acc));
  }
  void rmsnorm_forward(const Tensor& x, const Tensor& w, int64_t n, int64_t H, double eps, const Tensor& y,
                       const Tensor& rstd) override {
    SPPO_REPLAY(rmsnorm_forward(x, w, n, H, eps, y, rstd));
  }
  void rope_tables(const Tensor& f, int64_t half, const Tensor& pos, int64_t n, const Tensor& c, const Tensor& s) override {
    SPPO_REPLAY(rope_tables(f, half, pos, n, c, s));
  }
  void rope_apply(const Tensor& x, int64_t n, int64_t h, int64_t hd, const Tensor& c, const Tensor& s, bool inv) override {
    SPPO_REPLAY(rope_apply(x, n, h, hd, c, s, inv));
  }
  void swiglu_forward(const Tensor& g, const Tensor& u, int64_t count, const Tensor& a) override {
    SPPO_REPLAY(swiglu_forward(g, u, count, a));
  }
  void kv_write(const Tensor& k, const Tensor& v, const Tensor& slots, int64_t R, int64_t kw, int64_t rows,
                const Tensor& kp, const Tensor& vp) override {
    SPPO_REPLAY(kv_write(k, v, slots, R, kw, rows, kp, vp));
  }
  void attention_decode(const PagedShape& s, const Tensor& q, const Tensor& kp, const Tensor& vp, const Tensor& t,
                        const Tensor& tr, const Tensor& len, const Tensor& out) override {
    SPPO_REPLAY(attention_decode(s, q, kp, vp, t, tr, len, out));
  }
  void gather_rows(const Tensor& src, int64_t sr, const Tensor& idx, int64_t n, int64_t H, const Tensor& dst) override {
    SPPO_REPLAY(gather_rows(src, sr, idx, n, H, dst));
  }
#undef SPPO_REPLAY

  // Ops no decode step queues: forwarded, a violation inside a step.
  void embedding_backward(const Tensor& d, const Tensor& ids, int64_t n, int64_t V, int64_t H, const Tensor& dt) override {
    bad(), in_->embedding_backward(d, ids, n, V, H, dt);
  }
  void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& r, const Tensor& dy, int64_t n, int64_t H,
                        const Tensor& dx, const Tensor& dw, bool acc) override {
    bad(), in_->rmsnorm_backward(x, w, r, dy, n, H, dx, dw, acc);
  }
  void layernorm_forward(const Tensor& x, const Tensor& w, const Tensor& b, int64_t n, int64_t H, double eps,
                         const Tensor& y) override {
    bad(), in_->layernorm_forward(x, w, b, n, H, eps, y);
  }
  void bias_act(const Tensor& x, const Tensor& b, int64_t n, int64_t H, Activation a, const Tensor& y) override {
    bad(), in_->bias_act(x, b, n, H, a, y);
  }
  void swiglu_backward(const Tensor& g, const Tensor& u, const Tensor& da, int64_t c, const Tensor& dg,
                       const Tensor& du) override {
    bad(), in_->swiglu_backward(g, u, da, c, dg, du);
  }
  void attention_forward(const AttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& m,
                         const Tensor& o, const Tensor& l) override {
    bad(), in_->attention_forward(s, q, k, v, m, o, l);
  }
  void attention_backward(const AttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& m,
                          const Tensor& o, const Tensor& l, const Tensor& d, const Tensor& dq, const Tensor& dk,
                          const Tensor& dv) override {
    bad(), in_->attention_backward(s, q, k, v, m, o, l, d, dq, dk, dv);
  }
  void disentangled_attention(const RelAttnShape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& pq, const Tensor& pk, const Tensor& ri, const Tensor& st,
                              const Tensor& o) override {
    bad(), in_->disentangled_attention(s, q, k, v, pq, pk, ri, st, o);
  }
  void scatter_add_rows(const Tensor& s, const Tensor& i, int64_t n, int64_t H, int64_t dr, const Tensor& d) override {
    bad(), in_->scatter_add_rows(s, i, n, H, dr, d);
  }
  void segment_sum(const Tensor& x, const Tensor& s, int64_t n, int64_t S, const Tensor& o) override {
    bad(), in_->segment_sum(x, s, n, S, o);
  }
  void expand_segments(const Tensor& x, const Tensor& s, int64_t n, int64_t S, double sc, const Tensor& o) override {
    bad(), in_->expand_segments(x, s, n, S, sc, o);
  }
  void logprob_forward(const Tensor& lg, int64_t N, int64_t V, const Tensor& lb, const Tensor& tl,
                       const Tensor& lse) override {
    bad(), in_->logprob_forward(lg, N, V, lb, tl, lse);
  }
  void logprob_backward(const Tensor& lg, int64_t N, int64_t V, const Tensor& lb, const Tensor& gt, const Tensor& lse,
                        const Tensor& gl) override {
    bad(), in_->logprob_backward(lg, N, V, lb, gt, lse, gl);
  }
  void masked_sequence_sum(const Tensor& t, const Tensor& m, int64_t B, int64_t T, const Tensor& s) override {
    bad(), in_->masked_sequence_sum(t, m, B, T, s);
  }
  void sppo_loss(LossType t, double beta, int64_t B, const LossTensors& i, const LossResultTensors& o) override {
    bad(), in_->sppo_loss(t, beta, B, i, o);
  }
  void sample_weights(const Tensor& lg, int64_t n, int64_t V, double t, const Tensor& w) override {
    bad(), in_->sample_weights(lg, n, V, t, w);
  }
  void argmax_rows(const Tensor& lg, int64_t n, int64_t V, const Tensor& t) override {
    bad(), in_->argmax_rows(lg, n, V, t);
  }
  void sample_pick(const Tensor& w, int64_t n, int64_t V, int64_t k, double p, const SampleStream* s, const Tensor& t,
                   const Tensor& l) override {
    bad(), in_->sample_pick(w, n, V, k, p, s, t, l);
  }
  void sum_squares(const Tensor& g, int64_t n, const Tensor& a) override { bad(), in_->sum_squares(g, n, a); }
  void rmsprop_step(const Tensor& p, const Tensor& g, const Tensor& v, int64_t n, const RmspropParams& h,
                    const Tensor& ss, double mn, const Tensor& w16) override {
    bad(), in_->rmsprop_step(p, g, v, n, h, ss, mn, w16);
  }
  void adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, int64_t n, const AdamwParams& h,
                  const Tensor& ss, double mn, const Tensor& w16) override {
    bad(), in_->adamw_step(p, g, m, v, n, h, ss, mn, w16);
  }

 private:
  void bad() {
    if (rec_) ++violations;
  }
  std::shared_ptr<Backend> in_;
  std::vector<std::function<void()>>* rec_ = nullptr;
};

bool same(const Generation& a, const Generation& b) {
  return a.tokens == b.tokens && a.stopped_at_eos == b.stopped_at_eos && a.logprobs.size() == b.logprobs.size() &&
         (a.logprobs.empty() ||
          std::memcmp(a.logprobs.data(), b.logprobs.data(), a.logprobs.size() * sizeof(float)) == 0);
}

}  // namespace

TEST(replayed_recordings_of_bucketed_steps_give_the_eager_generations_bitwise) {
  sppo_test::Rng rng(81);
  const LlamaConfig c = model_test::medium();
  auto replaying = std::make_shared<ReplayingBackend>(make_cpu_backend());
  LlamaModel plain(make_cpu_backend(), c, Precision::FP32), graphed(replaying, c, Precision::FP32);
  const uint64_t seed = static_cast<uint64_t>(rng.integer(0, 1 << 30));
  plain.init_random(seed, 0.5);
  graphed.init_random(seed, 0.5);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<uint64_t> seeds;
  for (int64_t len : {int64_t{21}, int64_t{16}, int64_t{1}, int64_t{7}, int64_t{30}, rng.integer(2, 30)}) {
    prompts.push_back(random_tokens(rng, len, c.vocab_size));
    seeds.push_back(static_cast<uint64_t>(rng.integer(0, 1 << 30)));
  }
  std::vector<int32_t> eos;
  while (eos.size() < 16) eos.push_back(static_cast<int32_t>(rng.integer(0, c.vocab_size - 1)));
  struct Budget {
    int64_t tokens, running;
  };
  for (const bool greedy : {false, true})
    for (const Budget& b : {Budget{0, 0}, Budget{36, 7}, Budget{0, 5}, Budget{30, 3}}) {
      GenerateOptions o;
      o.greedy = greedy;
      o.temperature = 0.9;
      o.top_p = 0.95;
      o.max_new_tokens = 20;
      o.eos_ids = eos;
      o.max_batch_tokens = b.tokens;
      o.max_running_sequences = b.running;
      GenerateOptions off = o;
      off.decode_buckets = 0;
      const int64_t replays0 = replaying->replays, captures0 = replaying->captures;
      GenerateStats st;
      const auto want = generate(plain, prompts, 3, seeds, off);
      const auto got = generate(graphed, prompts, 3, seeds, o, &st);  // automatic: buckets on (captures_steps)
      bool all = want.size() == got.size();
      for (size_t i = 0; all && i < want.size(); ++i) all = same(want[i], got[i]);
      const int64_t replays = replaying->replays - replays0, captures = replaying->captures - captures0;
      std::printf("  %s, budget %lld/%lld: %lld bucketed steps, %lld captures, %lld replays%s\n",
                  greedy ? "greedy " : "sampled", (long long)b.tokens, (long long)b.running, (long long)st.bucketed_steps,
                  (long long)captures, (long long)replays, all ? "" : "  DIFFERENT");
      CHECK(all);
      CHECK(st.bucketed_steps == captures + replays);
      CHECK(replays > captures);  // most steps replay a recording
    }
  std::printf("  %lld ops outside the graph's kind queued inside a step\n", (long long)replaying->violations);
  CHECK(replaying->violations == 0);
}

TEST_MAIN()
