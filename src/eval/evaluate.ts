// Win rate of policy A against policy B under a judge: for each prompt and sample s, the judge
// compares A's s-th response with B's s-th response; outcome 1 when P(A > B) > 1/2, 0 when below,
// 0.5 on a tie (src/eval/stats.ts outcomeFromMatrix), averaged, with a Wilson interval clustered by prompt (src/eval/stats.ts).
import type { Judge } from '../judge/types.js';
import type { ModelHandle } from '../model/types.js';
import type { TextCodec } from '../text/codec.js';
import { outcomeFromMatrix, winRate, type WinRate } from './stats.js';
import { validateMatrix } from '../judge/matrix.js';
import { samplePrompts, type RolloutOptions, type RolloutRow } from '../stages/rollout.js';
import { evalSeed } from '../stages/seeds.js';

export interface EvalSampling {
  samples: number;
  temperature: number;
  topP: number;
  maxNewTokens: number;
  maxPromptTokens: number;
  batchSize: number;
  seed: number;
}

/** `samples` responses per prompt, seeded by the eval stream (stages/seeds.ts evalSeed). */
export function sampleForEval(
  model: ModelHandle,
  codec: TextCodec,
  prompts: readonly string[],
  s: EvalSampling,
  tick: (samples: number) => void = () => {},
): Promise<RolloutRow[]> {
  const opts: RolloutOptions = {
    k: s.samples,
    temperature: s.temperature,
    topP: s.topP,
    maxNewTokens: s.maxNewTokens,
    batchSize: s.batchSize,
    shardSize: prompts.length,
    maxPromptTokens: s.maxPromptTokens,
    seed: s.seed,
  };
  return samplePrompts(model, codec, prompts, prompts.map((_, i) => i), opts, (p) => evalSeed(p, s.seed), tick);
}

/** Number of judge comparisons compareSamples makes for `a` against `b`. */
export function comparisonCount(a: RolloutRow[], b: RolloutRow[]): number {
  return a.reduce((n, ra, i) => n + Math.min(ra.responses.length, b[i]?.responses.length ?? 0), 0);
}

export async function compareSamples(judge: Judge, a: RolloutRow[], b: RolloutRow[], batch = 64, tick: (comparisons: number) => void = () => {}): Promise<WinRate> {
  if (a.length !== b.length) throw new Error(`eval: ${a.length} prompts for A but ${b.length} for B`);
  const inputs: { prompt: string; responses: string[] }[] = [];
  // Comparisons of one prompt are correlated: the interval is clustered by prompt.
  const promptIds: number[] = [];
  a.forEach((ra, i) => {
    const rb = b[i]!;
    if (ra.prompt !== rb.prompt) throw new Error(`eval: prompt ${i} differs between A and B`);
    const n = Math.min(ra.responses.length, rb.responses.length);
    for (let s = 0; s < n; s++) {
      inputs.push({ prompt: ra.prompt, responses: [ra.responses[s]!, rb.responses[s]!] });
      promptIds.push(i);
    }
  });
  const outcomes: number[] = [];
  for (let i = 0; i < inputs.length; i += batch) {
    const chunk = inputs.slice(i, i + batch);
    const js = await judge.judge(chunk);
    if (js.length !== chunk.length) throw new Error(`judge '${judge.name}' returned ${js.length} judgments for ${chunk.length} comparisons`);
    js.forEach((j, n) => {
      validateMatrix(j.probability as unknown, `judge '${judge.name}', comparison ${i + n}`, 2);
      outcomes.push(outcomeFromMatrix(j.probability));
    });
    tick(chunk.length);
  }
  return winRate(outcomes, 0.95, promptIds);
}
