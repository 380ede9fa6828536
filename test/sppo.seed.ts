// Fresh random inputs each run, reproducible from the logged seed (SPPO_TEST_SEED=<n> replays one).
import { mulberry32 } from '../src/util/rng.js';

export function seededRandom(label: string): { seed: number; rand: () => number } {
  const seed = process.env.SPPO_TEST_SEED ? Number(process.env.SPPO_TEST_SEED) : Math.floor(Math.random() * 2 ** 31);
  console.log(`[${label}] seed ${seed} (rerun with SPPO_TEST_SEED=${seed})`);
  return { seed, rand: mulberry32(seed) };
}
