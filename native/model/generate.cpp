// generate and generate_each (model/generate.h): the arguments checked, the budget resolved, then
// the continuous batching of model/scheduler.h does the work; generate collects what it hands over.
#include "model/generate.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/scheduler.h"

namespace sppo {

void validate_generate_options(const GenerateOptions& o, int64_t V) {
  SPPO_CHECK(o.max_new_tokens >= 0, "generate: max_new_tokens must be >= 0, got ", o.max_new_tokens);
  SPPO_CHECK(std::isfinite(o.temperature) && o.temperature >= 0, "generate: temperature must be >= 0, got ",
             o.temperature);
  SPPO_CHECK(std::isfinite(o.top_p) && o.top_p > 0 && o.top_p <= 1, "generate: top_p must be in (0, 1], got ",
             o.top_p);
  SPPO_CHECK(o.top_k >= 0, "generate: top_k must be >= 0, got ", o.top_k);
  for (size_t i = 0; i < o.eos_ids.size(); ++i)
    SPPO_CHECK(o.eos_ids[i] >= 0 && o.eos_ids[i] < V, "generate: eos_ids[", i, "] = ", o.eos_ids[i],
               " is outside the vocabulary [0, ", V, ")");
}

void generate_each(LlamaModel& model, const std::vector<std::vector<int32_t>>& prompts, int64_t samples,
                   const std::vector<uint64_t>& seeds, const GenerateOptions& opts, const GenerateReport& report,
                   GenerateStats* stats) {
  const LlamaConfig& cfg = model.config();
  const int64_t V = cfg.vocab_size;
  SPPO_CHECK(!cfg.sequence_classification, "generate: a sequence-classification model cannot generate");
  SPPO_CHECK(samples >= 1, "generate: samples per prompt must be >= 1, got ", samples);
  SPPO_CHECK(seeds.size() == prompts.size(), "generate: ", prompts.size(), " prompts but ", seeds.size(), " seeds");
  SPPO_CHECK(report != nullptr, "generate: internal error: generate_each without a report");
  validate_generate_options(opts, V);
  std::vector<int64_t> lengths;
  for (size_t i = 0; i < prompts.size(); ++i) {
    SPPO_CHECK(!prompts[i].empty(), "generate: prompt ", i, " is empty");
    for (size_t t = 0; t < prompts[i].size(); ++t)
      SPPO_CHECK(prompts[i][t] >= 0 && prompts[i][t] < V, "generate: prompt ", i, " token ", t, " = ", prompts[i][t],
                 " is outside the vocabulary [0, ", V, ")");
    lengths.push_back(static_cast<int64_t>(prompts[i].size()));
  }
  const SchedulerBudget budget = resolve_budget(model, opts, lengths, samples);
  run_scheduler(model, prompts, samples, seeds, opts, budget, report, stats);
}

std::vector<Generation> generate(LlamaModel& model, const std::vector<std::vector<int32_t>>& prompts,
                                 int64_t samples, const std::vector<uint64_t>& seeds, const GenerateOptions& opts,
                                 GenerateStats* stats, const GenerateProgress* progress) {
  std::vector<Generation> out(prompts.size() * static_cast<size_t>(std::max<int64_t>(samples, 0)));
  generate_each(model, prompts, samples, seeds, opts, [&](int64_t finished, std::vector<FinishedPrompt>& done) {
    for (FinishedPrompt& f : done)
      for (size_t k = 0; k < f.samples.size(); ++k) out[static_cast<size_t>(f.prompt * samples) + k] = std::move(f.samples[k]);
    if (progress) (*progress)(finished);
  }, stats);
  return out;
}

}  // namespace sppo
