// The scalars of the TensorBoard file. Per optimizer step (step = the run's global step, counting
// on across iterations) under train/; per iteration (step = the iteration) under iteration/ and
// stage_seconds/. loss_beta2 is the loss times beta^2 (beta = 1/eta): the SPPO loss at eta = 1000
// starts near 1e5 (its targets are eta(p - 1/2)), times beta^2 it is the squared error of the
// beta-scaled log-ratios, of order 0.1.
import type { WinRate } from '../eval/stats.js';
import type { StageTimes, StepLine } from './runRecords.js';

export type Scalars = [string, number][];

const STEP_TAGS: [string, string][] = [
  ['train/loss', 'loss'],
  ['train/rewards/chosen', 'rewards/chosen'],
  ['train/rewards/rejected', 'rewards/rejected'],
  ['train/rewards/margins', 'rewards/margins'],
  ['train/rewards/accuracies', 'rewards/accuracies'],
  ['train/logps/chosen', 'logps/chosen'],
  ['train/logps/rejected', 'logps/rejected'],
  ['train/learning_rate', 'lr'],
  ['train/grad_norm', 'grad_norm'],
  ['train/tokens_per_second', 'tokens/s'],
  ['train/epoch', 'epoch'],
];

export function stepScalars(line: StepLine, eta: number): Scalars {
  const out: Scalars = [];
  for (const [tag, key] of STEP_TAGS) {
    const v = line[key];
    if (typeof v === 'number') out.push([tag, v]);
    if (key === 'loss' && typeof v === 'number') out.push(['train/loss_beta2', v / (eta * eta)]);
  }
  out.push(['train/iteration', line.iteration ?? NaN]);
  return out;
}

export interface IterationRecord {
  summary: Record<string, unknown> | null;
  winRate: WinRate | null;
  stageTimes: StageTimes;
}

export function iterationScalars(r: IterationRecord, eta: number): Scalars {
  const out: Scalars = [];
  const num = (tag: string, v: unknown): void => {
    if (typeof v === 'number') out.push([tag, v]);
  };
  const w = r.winRate;
  if (w) {
    num('iteration/win_rate', w.winRate);
    num('iteration/win_rate_lower', w.lower);
    num('iteration/win_rate_upper', w.upper);
    num('iteration/wins', w.wins);
    num('iteration/ties', w.ties);
    num('iteration/losses', w.losses);
    num('iteration/comparisons', w.n);
  }
  const s = r.summary ?? {};
  num('iteration/prompts', s.prompts);
  num('iteration/pairs', s.pairs);
  num('iteration/steps', s.steps);
  num('iteration/mean_loss', s.meanLoss);
  if (typeof s.meanLoss === 'number') out.push(['iteration/mean_loss_beta2', s.meanLoss / (eta * eta)]);
  num('iteration/mean_margin', s.meanRewardMargin);
  num('iteration/mean_accuracy', s.meanAccuracy);
  for (const [stage, secs] of Object.entries(r.stageTimes)) num(`stage_seconds/${stage}`, secs);
  return out;
}
