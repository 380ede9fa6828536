// The static memory planner (train/memory_plan.h) against what the engine really allocates: small
// fp32 models (and bf16 ones, emulated on the CPU, for inference and generation; bf16 training
// needs the trainer's fp32 master weights) on a counting CPU backend, for training (with and without gradient checkpointing,
// RMSprop and AdamW, tied and untied heads), inference (reference log-probs, reward-model scores,
// logits) and generation (the paged KV cache), and bf16 training (the CPU's bf16 emulation: fp32
// master weights in the trainer); a plan that does not fit is refused with its figures, and the
// exact plan is enough to run. Then the figures of Mistral-7B and Llama-3-8B in bf16 on a 141 GB
// H200 (printed; they must fit).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu_backend.h"
#include "comm/communicator.h"
#include "core/error.h"
#include "model/generate.h"
#include "model/param_layout.h"
#include "pairrm_reference.h"
#include "test_model_common.h"
#include "train/grad_buckets.h"
#include "train/memory_plan.h"
#include "train/trainer.h"

using namespace model_test;

namespace {

void print_plan(const sppo::StagePlan& p) {
  std::printf("  %s plan:\n", p.stage.c_str());
  for (const auto& i : p.items)
    std::printf("    %-22s %12s  %s\n", i.name.c_str(), sppo::format_bytes(double(i.bytes)).c_str(), i.detail.c_str());
  std::printf("    %-22s %12s\n", "total", sppo::format_bytes(double(p.total())).c_str());
}

// B pairs of full rows of T tokens, every token but the first a response token (the planner's
// worst case for the log-prob head).
struct FullPairs {
  Batch c, r;
  std::vector<float> refc, refr, pw, pl, pwl;
  FullPairs(sppo_test::Rng& rng, int64_t B, int64_t T, int64_t V) {
    std::vector<std::vector<int32_t>> cs, rs;
    for (int64_t b = 0; b < B; ++b) {
      cs.push_back(random_tokens(rng, T, V));
      rs.push_back(random_tokens(rng, T, V));
    }
    c = pad(cs, std::vector<int64_t>(B, T - 1), false);
    r = pad(rs, std::vector<int64_t>(B, T - 1), false);
    for (int64_t b = 0; b < B; ++b) {
      refc.push_back(static_cast<float>(rng.uniform(-20, -5)));
      refr.push_back(static_cast<float>(rng.uniform(-20, -5)));
      pw.push_back(static_cast<float>(rng.uniform(0.5, 1)));
      pl.push_back(static_cast<float>(rng.uniform(0, 0.5)));
      pwl.push_back(static_cast<float>(rng.uniform(0, 1)));
    }
  }
  sppo::PairBatch view() const {
    return sppo::PairBatch{c.view(), r.view(), refc.data(), refr.data(), pwl.data(), pw.data(), pl.data()};
  }
};

// Peak bytes of one optimizer step on a fresh counting backend (limit 0: none).
std::size_t training_peak(const sppo::LlamaConfig& c, const sppo::TrainingPlanOptions& o, std::size_t limit = 0,
                          sppo::Precision precision = sppo::Precision::FP32) {
  auto count = std::make_shared<sppo::HostMemoryCount>();
  auto be = sppo::make_counting_cpu_backend(count, limit);
  {
    sppo_test::Rng rng(o.pairs * 131 + o.seq_len);
    sppo::LlamaModel m(be, c, precision);
    m.init_random(7, 0.05);
    m.set_gradient_checkpointing(o.checkpointing);
    sppo::TrainerOptions to;
    to.optimizer.kind = o.optimizer;
    to.bucket_bytes = o.bucket_bytes;
    to.grad_dtype = o.grad_dtype;
    sppo::Trainer t(m, sppo::make_local_communicator(be), to);
    CHECK(t.gradients().dtype == sppo::resolve_grad_dtype(precision, o.grad_dtype));
    const FullPairs p(rng, o.pairs, o.seq_len, c.vocab_size);
    t.accumulate(p.view(), sppo::LossType::SPPO, 1e-3, 1.0, true);
    t.step(1e-4, 1.0);
  }
  CHECK(count->in_use == 0);  // everything given back
  return count->peak;
}

}  // namespace

TEST(training_plan_equals_allocation) {
  for (const auto& cfg : {llama2_tiny(), llama3_tiny(), medium()})
    for (bool ckpt : {false, true})
      for (auto opt : {sppo::OptimizerKind::RMSprop, sppo::OptimizerKind::AdamW}) {
        sppo::TrainingPlanOptions o;
        o.pairs = 3;
        o.seq_len = 9;
        o.checkpointing = ckpt;
        o.optimizer = opt;
        o.bucket_bytes = 4096;
        const sppo::StagePlan plan = sppo::plan_training_memory(cfg, sppo::Precision::FP32, o);
        const std::size_t got = training_peak(cfg, o);
        if (got != plan.total()) {
          std::printf("  H %lld ckpt %d %s: allocated %zu, planned %zu\n", static_cast<long long>(cfg.hidden_size), ckpt,
                      sppo::optimizer_kind_name(opt), got, plan.total());
          print_plan(plan);
        }
        CHECK(got == plan.total());
      }
}

// bf16 (the CPU's bf16 emulation, whose fp32 scratch is host memory outside the backend's count):
// bf16 weights, the trainer's fp32 master weights, fp32 or bf16 gradients (the trainer's
// grad_dtype; bf16 buckets hold twice the elements), fp32 state, bf16 activations.
TEST(bf16_training_plan_equals_allocation) {
  for (const auto& cfg : {llama2_tiny(), llama3_tiny(), medium()})
    for (bool ckpt : {false, true})
      for (auto opt : {sppo::OptimizerKind::RMSprop, sppo::OptimizerKind::AdamW})
        for (bool bf16_grads : {false, true}) {
          sppo::TrainingPlanOptions o;
          o.pairs = 2;
          o.seq_len = 7;
          o.checkpointing = ckpt;
          o.optimizer = opt;
          o.bucket_bytes = 4096;
          if (bf16_grads) o.grad_dtype = sppo::DType::BF16;
          const sppo::StagePlan plan = sppo::plan_training_memory(cfg, sppo::Precision::BF16, o);
          const std::size_t n = static_cast<std::size_t>(sppo::ParamLayout(cfg).total());
          bool has_master = false, grads_sized = false;
          for (const auto& i : plan.items) {
            if (i.name == "master weights") has_master = i.bytes == n * 4;
            // the arena padded to whole buckets' pieces: at least n elements, within a bucket of them
            if (i.name == "gradients")
              grads_sized = i.bytes >= n * (bf16_grads ? 2 : 4) && i.bytes < n * (bf16_grads ? 2 : 4) + 4096;
          }
          CHECK(has_master);
          CHECK(grads_sized);
          const std::size_t got = training_peak(cfg, o, 0, sppo::Precision::BF16);
          if (got != plan.total()) {
            std::printf("  bf16 H %lld ckpt %d %s grads %s: allocated %zu, planned %zu\n",
                        static_cast<long long>(cfg.hidden_size), ckpt, sppo::optimizer_kind_name(opt),
                        bf16_grads ? "bf16" : "fp32", got, plan.total());
            print_plan(plan);
          }
          CHECK(got == plan.total());
        }
}

TEST(bf16_gradients_are_planned_only_for_bf16_models) {
  sppo::TrainingPlanOptions o;
  o.grad_dtype = sppo::DType::BF16;
  CHECK_THROWS_WITH(sppo::plan_training_memory(llama3_tiny(), sppo::Precision::FP32, o),
                    "BF16 gradients need a bf16 model (precision bf16); this model is fp32, with F32 gradients");
  o.grad_dtype = sppo::DType::F16;
  CHECK_THROWS_WITH(sppo::plan_training_memory(llama3_tiny(), sppo::Precision::BF16, o), "F16 gradients need");
}

// fp16 is PairRM's inference mode (model/precision.h): the Llama model and its plans refuse it by
// name, and a PairRM plan in fp16 is the bf16 plan's size (both 2-byte weights and activations).
TEST(fp16_is_refused_for_the_llama_model_and_planned_for_pairrm) {
  const char* why = "fp16 is offered for PairRM only";
  CHECK_THROWS_WITH(sppo::plan_training_memory(llama3_tiny(), sppo::Precision::FP16, {}), why);
  CHECK_THROWS_WITH(sppo::plan_inference_memory(llama3_tiny(), sppo::Precision::FP16, 2, 8, sppo::InferenceHead::LogProbs),
                    why);
  CHECK_THROWS_WITH(sppo::plan_generation_memory(llama3_tiny(), sppo::Precision::FP16, {}), why);
  CHECK_THROWS_WITH(sppo::LlamaModel(sppo::backend_for(sppo::Device::CPU), llama3_tiny(), sppo::Precision::FP16), why);
  const sppo::PairRmConfig c = sppo_test::pairrm_tiny();
  const sppo::StagePlan half = sppo::plan_pairrm_memory(c, sppo::Precision::FP16, 300, 4);
  CHECK(half.total() == sppo::plan_pairrm_memory(c, sppo::Precision::BF16, 300, 4).total());
  CHECK(half.total() < sppo::plan_pairrm_memory(c, sppo::Precision::FP32, 300, 4).total());
}

TEST(checkpointing_plans_less_activation_memory) {
  sppo::TrainingPlanOptions o;
  o.pairs = 2;
  o.seq_len = 16;
  const auto full = sppo::plan_training_memory(medium(), sppo::Precision::FP32, o);
  o.checkpointing = true;
  const auto ckpt = sppo::plan_training_memory(medium(), sppo::Precision::FP32, o);
  CHECK(ckpt.total() < full.total());
  CHECK(training_peak(medium(), o) == ckpt.total());
}

TEST(inference_plans_equal_allocation) {
  sppo_test::Rng rng(3);
  const int64_t B = 3, T = 11;
  struct Case {
    sppo::LlamaConfig c;
    sppo::InferenceHead head;
  };
  for (const sppo::Precision prec : {sppo::Precision::FP32, sppo::Precision::BF16})
  for (const Case& k : {Case{llama2_tiny(), sppo::InferenceHead::LogProbs}, Case{medium(), sppo::InferenceHead::LogProbs},
                        Case{reward_tiny(), sppo::InferenceHead::Scores}, Case{llama3_tiny(), sppo::InferenceHead::Logits}}) {
    auto count = std::make_shared<sppo::HostMemoryCount>();
    auto be = sppo::make_counting_cpu_backend(count);
    {
      sppo::LlamaModel m(be, k.c, prec);
      m.init_random(5, 0.05);
      std::vector<std::vector<int32_t>> seqs;
      for (int64_t b = 0; b < B; ++b) seqs.push_back(random_tokens(rng, T, k.c.vocab_size));
      const Batch batch = pad(seqs, std::vector<int64_t>(B, T - 1), false);
      if (k.head == sppo::InferenceHead::LogProbs) {
        std::vector<float> out(B);
        m.sequence_logprobs(batch.view(), sppo::Tensor(out.data(), sppo::DType::F32, B));
      } else if (k.head == sppo::InferenceHead::Scores) {
        std::vector<float> out(B * k.c.num_labels);
        m.scores(batch.view(), sppo::Tensor(out.data(), sppo::DType::F32, B * k.c.num_labels));
      } else {
        std::vector<float> out(B * T * k.c.vocab_size);
        m.logits(batch.view(), sppo::Tensor(out.data(), sppo::DType::F32, B * T * k.c.vocab_size));
      }
    }
    const auto plan = sppo::plan_inference_memory(k.c, prec, B, T, k.head);
    if (count->peak != plan.total()) {
      std::printf("  %s, head %d: allocated %zu, planned %zu\n", sppo::precision_name(prec), static_cast<int>(k.head),
                  count->peak, plan.total());
      print_plan(plan);
    }
    CHECK(count->peak == plan.total());
    CHECK(count->in_use == 0);
  }
}

TEST(generation_plan_equals_allocation) {
  sppo_test::Rng rng(4);
  struct Case {
    int64_t prompts, samples, prompt_len, max_new;
    bool greedy;
  };
  // The prefill's rows dominate the decode step in the first two, the samples' rows in the third.
  // With decode buckets (model/decode_buckets.h, CUDA's default; forced here): the KV cache's
  // scratch block and row, and the buckets' buffer, instead of the later steps' decode rows.
  for (const bool buckets : {false, true})
  for (const sppo::Precision prec : {sppo::Precision::FP32, sppo::Precision::BF16})
  for (const Case& k : {Case{2, 3, 21, 9, false}, Case{3, 2, 16, 17, true}, Case{2, 40, 3, 5, false}}) {
    const sppo::LlamaConfig c = llama3_tiny();
    auto count = std::make_shared<sppo::HostMemoryCount>();
    auto be = sppo::make_counting_cpu_backend(count);
    {
      sppo::LlamaModel m(be, c, prec);
      m.init_random(9, 0.05);
      std::vector<std::vector<int32_t>> prompts;
      std::vector<uint64_t> seeds;
      for (int64_t i = 0; i < k.prompts; ++i) {
        prompts.push_back(random_tokens(rng, k.prompt_len, c.vocab_size));
        seeds.push_back(static_cast<uint64_t>(rng.integer(0, 1 << 30)));
      }
      sppo::GenerateOptions go;
      go.max_new_tokens = k.max_new;
      go.greedy = k.greedy;
      go.temperature = 0.8;
      go.decode_buckets = buckets ? 1 : 0;
      sppo::generate(m, prompts, k.samples, seeds, go);  // no EOS: every sample runs to max_new
    }
    sppo::GenerationPlanOptions o;
    o.prompts = k.prompts;
    o.samples = k.samples;
    o.prompt_len = k.prompt_len;
    o.min_prompt_len = k.prompt_len;  // every prompt has that length
    o.max_new_tokens = k.max_new;
    o.greedy = k.greedy;
    o.decode_buckets = buckets;
    const auto plan = sppo::plan_generation_memory(c, prec, o);
    if (count->peak != plan.total()) {
      std::printf("  %s%s, %lld prompts x %lld: allocated %zu, planned %zu\n", sppo::precision_name(prec),
                  buckets ? " (decode buckets)" : "",
                  static_cast<long long>(k.prompts),
                  static_cast<long long>(k.samples), count->peak, plan.total());
      print_plan(plan);
    }
    CHECK(count->peak == plan.total());
  }
}

// The pipeline's order on one policy: a rollout (generate, whose decode workspace the model keeps),
// then a trainer and a training step. Making the trainer frees the decode workspace, so from there
// the peak is the training plan exactly (the weights included), not the plan plus the decode step.
TEST(training_after_a_rollout_peaks_at_the_training_plan) {
  sppo_test::Rng rng(6);
  for (const sppo::Precision prec : {sppo::Precision::FP32, sppo::Precision::BF16}) {
    const sppo::LlamaConfig c = llama3_tiny();
    auto count = std::make_shared<sppo::HostMemoryCount>();
    auto be = sppo::make_counting_cpu_backend(count);
    sppo::TrainingPlanOptions o;
    o.pairs = 2;
    o.seq_len = 7;
    o.checkpointing = true;
    o.bucket_bytes = 4096;
    if (prec == sppo::Precision::BF16) o.grad_dtype = sppo::DType::BF16;
    {
      sppo::LlamaModel m(be, c, prec);
      m.init_random(9, 0.05);
      m.set_gradient_checkpointing(true);
      const std::size_t weights = count->in_use;
      sppo::GenerateOptions go;
      go.max_new_tokens = 30;
      go.temperature = 0.8;
      sppo::generate(m, {random_tokens(rng, 40, c.vocab_size), random_tokens(rng, 40, c.vocab_size)}, 4, {1, 2}, go);
      CHECK(count->in_use > weights);  // the decode workspace stays with the model
      count->peak = count->in_use;
      sppo::TrainerOptions to;
      to.bucket_bytes = o.bucket_bytes;
      to.grad_dtype = o.grad_dtype;
      sppo::Trainer t(m, sppo::make_local_communicator(be), to);
      const FullPairs p(rng, o.pairs, o.seq_len, c.vocab_size);
      t.accumulate(p.view(), sppo::LossType::SPPO, 1e-3, 1.0, true);
      t.step(1e-4, 1.0);
      const std::size_t want = sppo::plan_training_memory(c, prec, o).total();
      if (count->peak != want)
        std::printf("  %s: training after a rollout peaked at %zu, planned %zu\n", sppo::precision_name(prec), count->peak, want);
      CHECK(count->peak == want);
    }
    CHECK(count->in_use == 0);
  }
}

// A call the budget splits (prompts join as others finish): the plan is the worst step the budget
// allows, so the allocation stays within it, and the KV pool (allocated whole) is exactly the budget's.
TEST(a_budget_limited_generation_stays_within_its_plan) {
  sppo_test::Rng rng(5);
  const sppo::LlamaConfig c = llama3_tiny();
  struct Budget {
    int64_t tokens, sequences, cache, swap;
  };
  // The pool of 12 blocks: reserving the worst case (swap 0), the plan is near exact; on demand
  // (automatic swap space) how many run at once depends on when samples cross block boundaries,
  // and the plan bounds what the blocks allow, a looser bound.
  for (const bool buckets : {false, true})
  for (const Budget& bu : {Budget{40, 0, 0, -1}, Budget{0, 6, 0, -1}, Budget{0, 0, 16 * 12, 0}, Budget{0, 0, 16 * 12, -1}}) {
    auto count = std::make_shared<sppo::HostMemoryCount>();
    auto be = sppo::make_counting_cpu_backend(count);
    const int64_t np = 5, K = 3, P = 11, max_new = 7;
    sppo::GenerateOptions go;
    go.max_new_tokens = max_new;
    go.temperature = 0.9;
    go.max_batch_tokens = bu.tokens;
    go.max_running_sequences = bu.sequences;
    go.max_cache_tokens = bu.cache;
    go.max_swap_tokens = bu.swap;
    go.decode_buckets = buckets ? 1 : 0;
    sppo::GenerateStats st;
    {
      sppo::LlamaModel m(be, c, sppo::Precision::FP32);
      m.init_random(3, 0.05);
      std::vector<std::vector<int32_t>> prompts;
      std::vector<uint64_t> seeds;
      for (int64_t i = 0; i < np; ++i) {
        prompts.push_back(random_tokens(rng, P, c.vocab_size));
        seeds.push_back(static_cast<uint64_t>(rng.integer(0, 1 << 30)));
      }
      sppo::generate(m, prompts, K, seeds, go, &st);
    }
    CHECK(st.steps > max_new);  // the budget did split the call
    sppo::GenerationPlanOptions o;
    o.prompts = np;
    o.samples = K;
    o.prompt_len = P;
    o.min_prompt_len = P;  // every prompt has that length
    o.max_new_tokens = max_new;
    o.max_batch_tokens = bu.tokens;
    o.max_running_sequences = bu.sequences;
    o.max_cache_tokens = bu.cache;
    o.max_swap_tokens = bu.swap;
    o.decode_buckets = buckets;
    const auto plan = sppo::plan_generation_memory(c, sppo::Precision::FP32, o);
    const bool on_demand = bu.cache > 0 && bu.swap != 0;
    std::printf("  %sbudget tokens %lld, sequences %lld, cache %lld, swap %lld: allocated %zu, planned %zu "
                "(peak running %lld, %lld preemptions)\n",
                buckets ? "decode buckets, " : "", static_cast<long long>(bu.tokens), static_cast<long long>(bu.sequences),
                static_cast<long long>(bu.cache), static_cast<long long>(bu.swap), count->peak, plan.total(),
                static_cast<long long>(st.peak_running), static_cast<long long>(st.preemptions));
    CHECK(count->peak <= plan.total());
    CHECK(plan.total() <= count->peak + count->peak / (on_demand ? 4 : 10));  // a bound, but not a loose one
    if (on_demand) CHECK(st.swap_blocks > 0);
    if (bu.cache > 0) CHECK(st.kv_blocks == bu.cache / 16);
    // The plan's pool in numbers is the pool generate() allocated.
    CHECK(plan.kv.blocks == st.kv_blocks);
    CHECK(plan.kv.block_size == st.block_size);
  }
}

// The planner knows only the longest prompt (a rollout plans before tokenizing); real prompts are
// shorter. A shorter prompt may need fewer blocks (so more prompts run at once within a KV
// budget: more decode rows and logits) or more (its samples' tails span one more block than the
// longest prompt's, so the automatic pool is larger): the plan must hold either way.
TEST(prompts_shorter_than_the_planned_longest_stay_within_the_plan) {
  sppo_test::Rng rng(6);
  const sppo::LlamaConfig c = llama3_tiny();
  struct Case {
    std::vector<int64_t> lengths;  // the first is the longest, the one planned
    int64_t K, max_new, cache;
  };
  // 1: a KV budget of 12 blocks holds one prompt of 11 (7 blocks) but three of 1 or 2 (4 each).
  // 2: an automatic pool; a prompt of 16 needs 1 + K blocks with 16 new tokens, one of 5 needs 1 + 2K.
  for (const Case& k : {Case{{11, 1, 2, 1, 2, 1}, 3, 7, 16 * 12}, Case{{16, 5, 5, 5}, 4, 16, 0}}) {
    auto count = std::make_shared<sppo::HostMemoryCount>();
    auto be = sppo::make_counting_cpu_backend(count);
    sppo::GenerateOptions go;
    go.max_new_tokens = k.max_new;
    go.temperature = 0.9;
    go.max_cache_tokens = k.cache;
    sppo::GenerateStats st;
    {
      sppo::LlamaModel m(be, c, sppo::Precision::FP32);
      m.init_random(3, 0.05);
      std::vector<std::vector<int32_t>> prompts;
      std::vector<uint64_t> seeds;
      for (int64_t P : k.lengths) {
        prompts.push_back(random_tokens(rng, P, c.vocab_size));
        seeds.push_back(static_cast<uint64_t>(rng.integer(0, 1 << 30)));
      }
      sppo::generate(m, prompts, k.K, seeds, go, &st);
    }
    sppo::GenerationPlanOptions o;
    o.prompts = static_cast<int64_t>(k.lengths.size());
    o.samples = k.K;
    o.prompt_len = k.lengths[0];
    o.max_new_tokens = k.max_new;
    o.max_cache_tokens = k.cache;
    const auto plan = sppo::plan_generation_memory(c, sppo::Precision::FP32, o);
    std::printf("  lengths %lld.., K %lld, cache %lld: allocated %zu, planned %zu (peak running %lld)\n",
                static_cast<long long>(k.lengths[0]), static_cast<long long>(k.K), static_cast<long long>(k.cache),
                count->peak, plan.total(), static_cast<long long>(st.peak_running));
    if (count->peak > plan.total()) print_plan(plan);
    CHECK(count->peak <= plan.total());
  }
}

TEST(a_plan_that_does_not_fit_is_refused_with_its_figures) {
  sppo::TrainingPlanOptions o;
  o.pairs = 2;
  o.seq_len = 12;
  o.checkpointing = true;
  o.bucket_bytes = 4096;
  const auto plan = sppo::plan_training_memory(medium(), sppo::Precision::FP32, o);
  // The exact plan is enough: a backend limited to it runs the step.
  CHECK(training_peak(medium(), o, plan.total()) == plan.total());
  // One byte less is refused before anything is allocated, naming every item.
  auto count = std::make_shared<sppo::HostMemoryCount>();
  auto be = sppo::make_counting_cpu_backend(count, plan.total() - 1);
  CHECK_THROWS_WITH(sppo::require_plan_fits(plan, *be), "the training plan needs ");
  CHECK_THROWS_WITH(sppo::require_plan_fits(plan, *be), "on cpu (weights ");
  CHECK_THROWS_WITH(sppo::require_plan_fits(plan, *be), "optimizer state ");
  CHECK_THROWS_WITH(sppo::require_plan_fits(plan, *be), " is available");
  CHECK(count->peak == 0);
  // And the engine itself, run anyway, fails (later, with its own message) under that limit.
  CHECK_THROWS_WITH(training_peak(medium(), o, plan.total() - 1), "available");
}

TEST(zero1_plans_rank_zeros_share_of_the_optimizer_state) {
  // Under ZeRO-1 every rank keeps its pieces of every bucket: the ranks' shares tile the arena, and
  // the plan (rank 0's share, the largest) is about 1/W of the unsharded state.
  const sppo::LlamaConfig c = medium();
  const sppo::ParamLayout layout(c);
  for (int world : {2, 3, 8}) {
    int64_t sum = 0, most = 0;
    for (int r = 0; r < world; ++r) {
      const auto s = sppo::plan_state_layout(layout, 4, 4096, world, r, true);
      sum += s.state_len;
      most = std::max(most, s.state_len);
      CHECK(s.padded_total >= layout.total());
    }
    CHECK(sum == layout.total());
    sppo::TrainingPlanOptions o;
    o.world = world;
    o.zero1 = true;
    o.bucket_bytes = 4096;
    o.optimizer = sppo::OptimizerKind::AdamW;
    const auto plan = sppo::plan_training_memory(c, sppo::Precision::BF16, o);
    for (const auto& i : plan.items) {
      if (i.name == "optimizer state") CHECK(i.bytes == static_cast<std::size_t>(most) * 4 * 2);
      if (i.name == "master weights") CHECK(i.bytes == static_cast<std::size_t>(most) * 4);
    }
    CHECK(most * world - layout.total() < 64 * world);  // buckets are granules of 64 W; only the last is uneven
  }
}

TEST(bad_plan_options_are_refused_by_name) {
  sppo::TrainingPlanOptions o;
  o.pairs = 0;
  CHECK_THROWS_WITH(sppo::plan_training_memory(llama2_tiny(), sppo::Precision::FP32, o), "pairs per micro-batch");
  sppo::GenerationPlanOptions g;
  g.max_new_tokens = 0;
  CHECK_THROWS_WITH(sppo::plan_generation_memory(llama2_tiny(), sppo::Precision::FP32, g), "max new tokens");
  // Sizes whose products would wrap int64 are refused, not printed as wrapped numbers.
  o.pairs = int64_t{1} << 30;
  o.seq_len = int64_t{1} << 30;
  CHECK_THROWS_WITH(sppo::plan_training_memory(llama2_tiny(), sppo::Precision::FP32, o), "more than 2^40 positions");
  CHECK_THROWS_WITH(sppo::plan_inference_memory(llama2_tiny(), sppo::Precision::FP32, int64_t{1} << 35, 1 << 20,
                                                sppo::InferenceHead::Logits),
                    "rows x sequence length");
  g.max_new_tokens = int64_t{1} << 40;
  g.prompts = 1 << 20;
  CHECK_THROWS_WITH(sppo::plan_generation_memory(llama2_tiny(), sppo::Precision::FP32, g), "prompt + new tokens");
  sppo::LlamaConfig bad = llama2_tiny();
  bad.num_kv_heads = 3;
  CHECK_THROWS_WITH(sppo::plan_inference_memory(bad, sppo::Precision::FP32, 1, 4, sppo::InferenceHead::Logits), "kv");
}

namespace {
// The public shapes (config.json of mistralai/Mistral-7B-v0.1 and meta-llama/Meta-Llama-3-8B).
sppo::LlamaConfig mistral_7b() {
  sppo::LlamaConfig c;
  c.vocab_size = 32000;
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.num_layers = 32;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 1e6;
  return c;
}
sppo::LlamaConfig llama3_8b() {
  sppo::LlamaConfig c = mistral_7b();
  c.vocab_size = 128256;
  c.rope_theta = 500000;
  c.rope_type = sppo::RopeType::Llama3;
  c.rope_factor = 8;
  c.rope_low_freq_factor = 1;
  c.rope_high_freq_factor = 4;
  c.rope_original_max_position = 8192;
  return c;
}
int64_t parameters(const sppo::LlamaConfig& c) {
  int64_t n = 0;
  for (const auto& p : sppo::ParamLayout(c).params()) n += p.numel;
  return n;
}
}  // namespace

TEST(seven_and_eight_billion_fit_one_h200_in_bf16) {
  // The published parameter counts (7,241,732,096 and 8,030,261,248): the layout is the real one.
  CHECK(parameters(mistral_7b()) == 7241732096LL);
  CHECK(parameters(llama3_8b()) == 8030261248LL);
  const std::size_t h200 = 141000000000ULL;
  for (const auto& [name, cfg] : {std::pair{"Mistral-7B", mistral_7b()}, std::pair{"Llama-3-8B", llama3_8b()}}) {
    sppo::TrainingPlanOptions o;
    o.pairs = 8;
    o.seq_len = 1024;
    o.checkpointing = true;
    o.optimizer = sppo::OptimizerKind::RMSprop;
    const auto plan = sppo::plan_training_memory(cfg, sppo::Precision::BF16, o);
    std::printf("  %s, bf16, RMSprop, checkpointing, micro-batch 8 pairs x 1024 tokens (141 GB = %s):\n", name,
                sppo::format_bytes(double(h200)).c_str());
    print_plan(plan);
    CHECK(plan.total() <= h200);
    sppo::require_plan_fits(plan, h200, "an H200");
    // bf16 halves the weights; master weights, gradients and RMSprop's one slot are fp32.
    const int64_t n = parameters(cfg);
    CHECK(plan.items[0].bytes >= static_cast<std::size_t>(2 * n));
    for (const auto& i : plan.items)
      if (i.name == "master weights" || i.name == "gradients" || i.name == "optimizer state")
        CHECK(i.bytes >= static_cast<std::size_t>(4 * n) && i.bytes < static_cast<std::size_t>(4 * n) + (1u << 20));
    // Issue 8's target: the same step with bf16 gradient buffers (fp32 master and state kept).
    o.grad_dtype = sppo::DType::BF16;
    const auto p16 = sppo::plan_training_memory(cfg, sppo::Precision::BF16, o);
    std::printf("  %s with bf16 gradients:\n", name);
    print_plan(p16);
    for (const auto& i : p16.items)
      if (i.name == "gradients")
        CHECK(i.bytes >= static_cast<std::size_t>(2 * n) && i.bytes < static_cast<std::size_t>(2 * n) + (1u << 20));
    CHECK(p16.total() + static_cast<std::size_t>(2 * n) <= plan.total() + (1u << 20));
  }
}

TEST_MAIN()
