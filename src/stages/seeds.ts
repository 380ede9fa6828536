// Sampling seeds. Each prompt has one seed; its K samples are the Philox sequences k = 0..K-1 of
// that seed (kernels/sample.h), drawn from one shared prefill of the prompt:
//
//   promptSeed(p) = 2 * (p + 1) + 2^32 * recipe.seed        (rollout; eval adds 1)
//
// p = the prompt's index in this iteration's prompt list. A sample depends only on (p, k, seed,
// policy): not on batch size, shard size, the number of samples asked for, or whether the run was
// resumed. (The reference seeds sample k of every prompt with k*50 through vLLM; its draws cannot
// be reproduced outside vLLM, so sppo-native keeps only the property that matters: a fixed, known
// stream per sample.)
export const SEED_RUN_STRIDE = 2 ** 32;

export function promptSeed(promptIndex: number, runSeed: number): number {
  return 2 * (promptIndex + 1) + SEED_RUN_STRIDE * runSeed;
}

/** Eval samples use a separate stream: the odd seeds. */
export function evalSeed(promptIndex: number, runSeed: number): number {
  return promptSeed(promptIndex, runSeed) + 1;
}

/** Benchmark exports: the answer to question i, turn t (t < 4), is sample 0 of this seed. */
export function answerSeed(question: number, turn: number, runSeed: number): number {
  return promptSeed(question, runSeed) + turn * 2 ** 31;
}
