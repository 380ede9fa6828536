// Optimizers against closed-form float64 references over several steps (RMSprop, AdamW with
// decoupled weight decay), global-norm clipping, and the state()/load_state() round trip.
#include <cmath>
#include <memory>

#include "optim/optimizer.h"
#include "testing.h"

namespace {

struct Params {
  std::vector<std::vector<float>> data, grad;
  std::vector<sppo::ParamRef> refs;
  Params(sppo_test::Rng& rng, std::vector<std::vector<int64_t>> shapes) {
    for (auto& s : shapes) {
      int64_t n = 1;
      for (auto d : s) n *= d;
      std::vector<float> d(n);
      for (auto& x : d) x = static_cast<float>(rng.normal());
      data.push_back(d);
      grad.emplace_back(n, 0.0f);
    }
    for (size_t i = 0; i < shapes.size(); ++i)
      refs.push_back({"p" + std::to_string(i), shapes[i], data[i].data(), grad[i].data()});
  }
  void random_grads(sppo_test::Rng& rng) {
    for (auto& g : grad)
      for (auto& x : g) x = static_cast<float>(rng.normal(0, 0.5));
  }
};

}  // namespace

TEST(rmsprop_matches_closed_form_over_steps) {
  sppo_test::Rng rng(31);
  for (double wd : {0.0, 0.05}) {
    Params p(rng, {{3, 5}, {7}});
    sppo::OptimizerConfig cfg;
    cfg.alpha = rng.uniform(0.9, 0.999);
    cfg.weight_decay = wd;
    auto opt = sppo::make_optimizer(cfg, p.refs);
    std::vector<std::vector<double>> ref(p.data.size()), v(p.data.size());
    for (size_t i = 0; i < p.data.size(); ++i) {
      ref[i].assign(p.data[i].begin(), p.data[i].end());
      v[i].assign(p.data[i].size(), 0.0);
    }
    for (int step = 0; step < 5; ++step) {
      p.random_grads(rng);
      const double lr = rng.uniform(1e-3, 1e-1);
      opt->step(p.refs, lr);
      for (size_t i = 0; i < ref.size(); ++i)
        for (size_t j = 0; j < ref[i].size(); ++j) {
          const double g = p.grad[i][j] + wd * ref[i][j];
          v[i][j] = cfg.alpha * v[i][j] + (1 - cfg.alpha) * g * g;
          ref[i][j] -= lr * g / (std::sqrt(v[i][j]) + cfg.eps);
          CHECK_CLOSE(p.data[i][j], ref[i][j], 1e-6, 1e-5);
        }
    }
    CHECK(opt->step_count() == 5);
  }
}

TEST(adamw_matches_closed_form_with_weight_decay) {
  sppo_test::Rng rng(32);
  Params p(rng, {{4, 3}, {5}});
  sppo::OptimizerConfig cfg;
  cfg.kind = "adamw";
  cfg.weight_decay = rng.uniform(0.01, 0.1);
  auto opt = sppo::make_optimizer(cfg, p.refs);
  std::vector<std::vector<double>> ref(2), m(2), v(2);
  for (int i = 0; i < 2; ++i) {
    ref[i].assign(p.data[i].begin(), p.data[i].end());
    m[i].assign(ref[i].size(), 0.0);
    v[i].assign(ref[i].size(), 0.0);
  }
  for (int t = 1; t <= 6; ++t) {
    p.random_grads(rng);
    const double lr = rng.uniform(1e-3, 5e-2);
    opt->step(p.refs, lr);
    for (int i = 0; i < 2; ++i)
      for (size_t j = 0; j < ref[i].size(); ++j) {
        const double g = p.grad[i][j];
        ref[i][j] *= 1 - lr * cfg.weight_decay;
        m[i][j] = 0.9 * m[i][j] + 0.1 * g;
        v[i][j] = 0.999 * v[i][j] + 0.001 * g * g;
        const double mhat = m[i][j] / (1 - std::pow(0.9, t)), vhat = v[i][j] / (1 - std::pow(0.999, t));
        ref[i][j] -= lr * mhat / (std::sqrt(vhat) + 1e-8);
        CHECK_CLOSE(p.data[i][j], ref[i][j], 1e-6, 1e-5);
      }
  }
}

TEST(clip_grad_norm_scales_to_max_norm) {
  sppo_test::Rng rng(33);
  Params p(rng, {{6, 2}, {9}});
  p.random_grads(rng);
  double ss = 0;
  for (auto& g : p.grad)
    for (float x : g) ss += double(x) * x;
  const double norm = std::sqrt(ss);
  auto before = p.grad;
  // Above the norm: untouched.
  CHECK_CLOSE(sppo::clip_grad_norm(p.refs, norm * 2), norm, 1e-9, 1e-6);
  CHECK(p.grad == before);
  CHECK_CLOSE(sppo::clip_grad_norm(p.refs, 0.0), norm, 1e-9, 1e-6);  // disabled
  CHECK(p.grad == before);
  const double max_norm = norm * rng.uniform(0.1, 0.9);
  CHECK_CLOSE(sppo::clip_grad_norm(p.refs, max_norm), norm, 1e-9, 1e-6);
  const double coef = max_norm / (norm + 1e-6);
  for (size_t i = 0; i < before.size(); ++i)
    for (size_t j = 0; j < before[i].size(); ++j) CHECK_CLOSE(p.grad[i][j], before[i][j] * coef, 1e-7, 1e-6);
  // A non-finite norm is returned and the gradients are left alone.
  p.grad[1][3] = NAN;
  auto nan_before = p.grad;
  CHECK(!std::isfinite(sppo::clip_grad_norm(p.refs, 1.0)));
  for (size_t j = 0; j < p.grad[0].size(); ++j) CHECK(p.grad[0][j] == nan_before[0][j]);
}

TEST(state_round_trip_resumes_identically) {
  sppo_test::Rng rng(34);
  for (const char* kind : {"rmsprop", "adamw"}) {
    sppo::OptimizerConfig cfg;
    cfg.kind = kind;
    cfg.weight_decay = 0.01;
    Params a(rng, {{5, 3}, {4}});
    auto oa = sppo::make_optimizer(cfg, a.refs);
    for (int s = 0; s < 3; ++s) {
      a.random_grads(rng);
      oa->step(a.refs, 0.01);
    }
    auto st = oa->state();
    CHECK(st.size() == (std::string(kind) == "adamw" ? 4u : 2u));
    CHECK(st[0].name == (std::string(kind) == "adamw" ? "p0.exp_avg" : "p0.square_avg"));
    // A second copy of the parameters with the saved state continues the same trajectory.
    Params b = a;
    b.refs.clear();
    for (size_t i = 0; i < b.data.size(); ++i)
      b.refs.push_back({a.refs[i].name, a.refs[i].shape, b.data[i].data(), b.grad[i].data()});
    auto ob = sppo::make_optimizer(cfg, b.refs);
    ob->load_state(st, oa->step_count());
    CHECK(ob->step_count() == 3);
    for (int s = 0; s < 2; ++s) {
      a.random_grads(rng);
      b.grad = a.grad;
      for (size_t i = 0; i < b.data.size(); ++i) b.refs[i].grad = b.grad[i].data();
      oa->step(a.refs, 0.02);
      ob->step(b.refs, 0.02);
    }
    CHECK(a.data == b.data);
    // Bad state is refused before anything changes.
    auto missing = st;
    missing.pop_back();
    CHECK_THROWS_WITH(ob->load_state(missing, 1), "missing state");
    auto wrong = st;
    wrong[0].data.push_back(1.0f);
    CHECK_THROWS_WITH(ob->load_state(wrong, 1), "elements, expected");
    CHECK(ob->step_count() == 5);
  }
}

TEST(optimizer_rejects_bad_configs_and_params) {
  sppo_test::Rng rng(35);
  Params p(rng, {{2, 2}});
  sppo::OptimizerConfig cfg;
  cfg.kind = "sgd";
  CHECK_THROWS_WITH(sppo::make_optimizer(cfg, p.refs), "'sgd'");
  cfg = sppo::OptimizerConfig();
  cfg.eps = 0;
  CHECK_THROWS_WITH(sppo::make_optimizer(cfg, p.refs), "eps");
  cfg = sppo::OptimizerConfig();
  cfg.kind = "adamw";
  cfg.beta2 = 1.0;
  CHECK_THROWS_WITH(sppo::make_optimizer(cfg, p.refs), "beta2");
  auto opt = sppo::make_optimizer(sppo::OptimizerConfig(), p.refs);
  Params q(rng, {{3}});
  CHECK_THROWS_WITH(opt->step(q.refs, 0.1), "expected 'p0' (4)");
}

TEST_MAIN()
