// Sampling seeds. The reference seeds sample k of every prompt with k*50 (vLLM, whole batch); here
// each prompt is seeded alone (ModelHandle.generate), so a per-prompt term keeps prompts apart:
//
//   seed(p, k) = k*50 + 100000*(p + 1) + 2^32 * recipe.seed
//
// p = the prompt's index in this iteration's prompt list, k = sample index (k <= 1999 keeps the
// k*50 term below 100000, so no two (p, k) share a seed). A sample depends only on (p, k, seed,
// policy): not on batch size, shard size, or whether the run was resumed.
export const SEED_PROMPT_STRIDE = 100_000;
export const SEED_RUN_STRIDE = 2 ** 32;

export function sampleSeed(promptIndex: number, k: number, runSeed: number): number {
  return k * 50 + SEED_PROMPT_STRIDE * (promptIndex + 1) + SEED_RUN_STRIDE * runSeed;
}

/** Eval samples use a separate stream: sample index k + 1000 (still <= 1999 for 999 samples). */
export function evalSeed(promptIndex: number, sample: number, runSeed: number): number {
  return sampleSeed(promptIndex, 1000 + sample, runSeed);
}
