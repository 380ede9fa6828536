// generate() with a scheduler budget changed before the call (model/scheduler.h run_scheduler):
// the suites that need preemption from the first step lower SchedulerBudget::assumed_use, which
// generate() keeps at 1 (the worst case until a prompt of the call has finished).
#pragma once
#include <cstdint>
#include <vector>

#include "model/generate.h"
#include "model/scheduler.h"

namespace sppo_test {

// The generations prompt-major, as generate()'s, with `assumed_use` in place of 1.
inline std::vector<sppo::Generation> generate_assuming(sppo::LlamaModel& m, const std::vector<std::vector<int32_t>>& prompts,
                                                       int64_t K, const std::vector<uint64_t>& seeds,
                                                       const sppo::GenerateOptions& o, double assumed_use,
                                                       sppo::GenerateStats* stats, const sppo::StepHook* hook = nullptr) {
  std::vector<int64_t> lengths;
  for (const auto& p : prompts) lengths.push_back(static_cast<int64_t>(p.size()));
  sppo::SchedulerBudget b = sppo::resolve_budget(m, o, lengths, K);
  b.assumed_use = assumed_use;
  std::vector<sppo::Generation> out(prompts.size() * static_cast<size_t>(K));
  const sppo::GenerateReport collect = [&](int64_t, std::vector<sppo::FinishedPrompt>& done) {
    for (auto& f : done)
      for (int64_t k = 0; k < K; ++k)
        out[static_cast<size_t>(f.prompt * K + k)] = std::move(f.samples[static_cast<size_t>(k)]);
  };
  sppo::run_scheduler(m, prompts, K, seeds, o, b, collect, stats, hook);
  return out;
}

}  // namespace sppo_test
