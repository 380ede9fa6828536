// The small SPPO run the pipeline suites (pipeline.stages, pipeline.resume) train on the fake
// model: demo model and judge, two iterations of a few prompts, tiny rollouts and batches.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultRecipe } from '../../src/recipe/fields.js';
import type { Recipe } from '../../src/recipe/types.js';

export interface FakeRunSetup {
  /** Folder the runs are written under (one subfolder per run name). */
  root: string;
  promptFile: string;
  maxPrompts: number;
  seed: number;
}

/** The recipe of run `name` under `setup.root`; `patch` adjusts it per test. */
export function fakeRunRecipe(setup: FakeRunSetup, name: string, patch: (r: Recipe) => void = () => {}): Recipe {
  const r = defaultRecipe();
  r.model = 'demo';
  r.prompts = [setup.promptFile];
  r.judge = 'builtin:demo';
  r.output = join(setup.root, name);
  r.seed = setup.seed % 1000;
  r.iterations = 2;
  r.maxPrompts = setup.maxPrompts;
  r.rollout = { ...r.rollout, k: 3, maxNewTokens: 6, temperature: 1, topP: 1, batchSize: 4, shardSize: 4 };
  r.lengths = { ...r.lengths, maxPromptTokens: 32, maxLength: 40 };
  r.sppo.eta = 10;
  r.train = { ...r.train, lr: 0.05, globalBatch: 4, microBatch: 2, epochs: 2, selectedEpoch: 1, resumeEvery: 1, warmupRatio: 0.2 };
  patch(r);
  return r;
}

/** The fake model's weights as saved in a checkpoint folder. */
export const fakeWeights = (folder: string): number[] => JSON.parse(readFileSync(join(folder, 'weights.json'), 'utf8')) as number[];
