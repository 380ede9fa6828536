// The Trainer (train/trainer.h): a step equals the optimizer kernels applied by hand with the
// float64 global norm; a non-finite gradient skips the step; buckets tile the arena at parameter
// boundaries and are reduced last layers first, each once, only after backward has finished every
// gradient in them; the optimizer state round-trips.
#include <cmath>
#include <limits>
#include <vector>

#include "comm/communicator.h"
#include "kernels/rmsprop.h"
#include "test_model_common.h"
#include "train/trainer.h"

using namespace model_test;

namespace {

struct Pairs {
  Batch c, r;
  std::vector<float> refc, refr, pw, pl, pwl;
  sppo::PairBatch view() const {
    return sppo::PairBatch{c.view(), r.view(), refc.data(), refr.data(), pwl.data(), pw.data(), pl.data()};
  }
};

Pairs random_pairs(sppo_test::Rng& rng, int64_t V) {
  Pairs p;
  p.c = pad({random_tokens(rng, 6, V), random_tokens(rng, 4, V)}, {3, 2}, true);
  p.r = pad({random_tokens(rng, 5, V), random_tokens(rng, 7, V)}, {2, 4}, false);
  for (int i = 0; i < 2; ++i) {
    p.refc.push_back(static_cast<float>(rng.uniform(-20, -5)));
    p.refr.push_back(static_cast<float>(rng.uniform(-20, -5)));
    p.pw.push_back(static_cast<float>(rng.uniform(0.5, 1)));
    p.pl.push_back(static_cast<float>(rng.uniform(0, 0.5)));
    p.pwl.push_back(static_cast<float>(rng.uniform(0, 1)));
  }
  return p;
}

sppo::TrainerOptions rmsprop(int64_t bucket_bytes = 4096) {
  sppo::TrainerOptions o;
  o.optimizer.kind = sppo::OptimizerKind::RMSprop;
  o.bucket_bytes = bucket_bytes;
  return o;
}

std::vector<float> copy(const sppo::Tensor& t) { return std::vector<float>(t.as<float>(), t.as<float>() + t.numel); }

}  // namespace

TEST(a_step_equals_the_kernels_applied_by_hand) {
  sppo_test::Rng rng(51);
  auto c = llama3_tiny();
  Engine<float> e(c);
  e.init_random(static_cast<uint64_t>(rng.integer(0, 1 << 30)), 0.3);
  sppo::Trainer t(e.model(), sppo::make_local_communicator(e.model().backend_ptr()), rmsprop());
  const Pairs p = random_pairs(rng, c.vocab_size);
  for (int step = 0; step < 3; ++step) {
    t.accumulate(p.view(), sppo::LossType::SPPO, 0.1, 0.5, false);
    t.accumulate(p.view(), sppo::LossType::SPPO, 0.1, 0.5, true);
    const std::vector<float> g = copy(t.gradients()), w0 = copy(e.model().weights());
    std::vector<float> w = w0, v = copy(t.slot(0));
    double ss = 0;
    for (float x : g) ss += double(x) * x;
    const double max_norm = 0.05;  // small, so that clipping is active
    sppo::RmspropParams h;
    h.lr = 0.01;
    sppo::cpu::rmsprop_step(w.data(), g.data(), v.data(), static_cast<int64_t>(w.size()), h, &ss, max_norm);
    const sppo::StepResult r = t.step(0.01, max_norm);
    CHECK(r.stepped);
    CHECK_CLOSE(r.grad_norm, std::sqrt(ss), 0, 1e-12);
    CHECK(copy(e.model().weights()) == w);
    CHECK(copy(t.slot(0)) == v);
    for (float x : copy(t.gradients())) CHECK(x == 0.f);  // zeroed after the step
  }
  CHECK(t.step_count() == 3);
}

TEST(a_non_finite_gradient_skips_the_step) {
  sppo_test::Rng rng(52);
  auto c = llama2_tiny();
  Engine<float> e(c);
  e.init_random(1, 0.3);
  sppo::Trainer t(e.model(), sppo::make_local_communicator(e.model().backend_ptr()), rmsprop());
  t.accumulate(random_pairs(rng, c.vocab_size).view(), sppo::LossType::SPPO, 0.1, 1.0);
  t.gradients().as<float>()[5] = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> w0 = copy(e.model().weights()), v0 = copy(t.slot(0));
  const sppo::StepResult r = t.step(0.01, 1.0);
  CHECK(!r.stepped);
  CHECK(std::isnan(r.grad_norm));
  CHECK(copy(e.model().weights()) == w0);
  CHECK(copy(t.slot(0)) == v0);
  CHECK(t.step_count() == 0);
}

TEST(buckets_tile_the_arena_at_parameter_boundaries) {
  auto c = medium();
  const sppo::ParamLayout layout(c);
  for (int64_t size : {int64_t(1), int64_t(1000), int64_t(50000), int64_t(1) << 30}) {
    const auto bs = sppo::plan_buckets(layout, size);
    CHECK(bs.front().begin == 0 && bs.back().end == layout.total());
    for (size_t i = 0; i < bs.size(); ++i) {
      if (i > 0) CHECK(bs[i].begin == bs[i - 1].end);
      if (i + 1 < bs.size()) CHECK(bs[i].end - bs[i].begin >= size);
      bool at_boundary = bs[i].end == layout.total();
      for (const auto& p : layout.params()) at_boundary |= p.offset == bs[i].end;
      CHECK(at_boundary);
    }
    if (size == int64_t(1) << 30) CHECK(bs.size() == 1);
  }
}

TEST(grads_ready_prefixes_are_final_and_buckets_go_last_layers_first) {
  sppo_test::Rng rng(53);
  for (auto c : {llama3_tiny(), llama2_tiny()}) {  // tied and untied heads
    c.num_layers = 3;
    Engine<float> e(c);
    e.init_random(static_cast<uint64_t>(rng.integer(0, 1 << 30)), 0.3);
    const Pairs p = random_pairs(rng, c.vocab_size);
    // The hook copies the gradients when it is called; the final gradients must agree on each
    // prefix it announced.
    std::vector<std::pair<int64_t, std::vector<float>>> seen;
    sppo::BackwardHooks hooks;
    hooks.grads_ready = [&](int64_t prefix) { seen.emplace_back(prefix, copy(e.grads())); };
    sppo::Workspace ws(e.model().backend_ptr(), "test");
    e.zero_grad();
    sppo::preference_step(e.model(), p.view(), sppo::LossType::SPPO, 0.1, 1.0, e.grads(), &hooks, ws);
    const std::vector<float> final_grads = copy(e.grads());
    CHECK(seen.size() == static_cast<size_t>(c.num_layers) + 2);
    CHECK(seen.back().first == e.model().layout().total());
    for (size_t i = 0; i < seen.size(); ++i) {
      if (i) CHECK(seen[i].first > seen[i - 1].first);
      for (int64_t j = 0; j < seen[i].first; ++j) CHECK(seen[i].second[j] == final_grads[j]);
    }
    // The trainer reduces every bucket once, in arena order (= last layers first).
    sppo::Trainer t(e.model(), sppo::make_local_communicator(e.model().backend_ptr()), rmsprop(2048));
    t.accumulate(p.view(), sppo::LossType::SPPO, 0.1, 1.0, true);
    const auto& ev = t.last_bucket_events();
    CHECK(ev.size() == t.buckets().size());
    CHECK(t.buckets().size() > 3);
    for (size_t i = 0; i < ev.size(); ++i) CHECK(ev[i].bucket == static_cast<int>(i));
    // The first bucket holds the head (or the final norm), the last the embedding.
    CHECK(t.buckets().back().end == e.model().layout().total());
  }
}

TEST(optimizer_state_round_trips_and_training_continues_identically) {
  sppo_test::Rng rng(54);
  auto c = llama3_tiny();
  const Pairs p = random_pairs(rng, c.vocab_size);
  for (auto kind : {sppo::OptimizerKind::RMSprop, sppo::OptimizerKind::AdamW}) {
    sppo::TrainerOptions o = rmsprop();
    o.optimizer.kind = kind;
    Engine<float> a(c), b(c);
    a.init_random(7, 0.3);
    sppo::Trainer ta(a.model(), sppo::make_local_communicator(a.model().backend_ptr()), o);
    for (int s = 0; s < 2; ++s) {
      ta.accumulate(p.view(), sppo::LossType::SPPO, 0.1, 1.0);
      ta.step(0.01, 1.0);
    }
    // b resumes from a's weights and state.
    std::copy(a.model().weights().as<float>(), a.model().weights().as<float>() + a.model().layout().total(),
              b.model().weights().as<float>());
    sppo::Trainer tb(b.model(), sppo::make_local_communicator(b.model().backend_ptr()), o);
    for (size_t i = 0; i < ta.slot_names().size(); ++i) {
      const auto src = copy(ta.slot(static_cast<int>(i)));
      std::copy(src.begin(), src.end(), tb.slot(static_cast<int>(i)).as<float>());
    }
    tb.set_step_count(ta.step_count());
    for (sppo::Trainer* t : {&ta, &tb}) {
      t->accumulate(p.view(), sppo::LossType::SPPO, 0.1, 1.0);
      t->step(0.01, 1.0);
    }
    CHECK(copy(a.model().weights()) == copy(b.model().weights()));
  }
  sppo::OptimizerConfig bad;
  bad.alpha = 1.5;
  CHECK_THROWS_WITH(sppo::validate_optimizer_config(bad), "alpha");
  CHECK_THROWS_WITH(sppo::parse_optimizer_kind("sgd"), "kind must be");
}

TEST_MAIN()
