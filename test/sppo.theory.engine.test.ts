// SPPO's theory through the real training step: a tiny Llama model (src/model) whose responses are
// single tokens of three kinds — rock, paper, scissors — judged by the built-in intransitive judge
// (builtin:cyclic), trained with the engine's own loss and optimizer (ModelHandle.accumulate and
// optimizerStep), pairs from the project's training table (pairing 'all'). The policy is the
// model's next-token distribution restricted to the three kind tokens. Starting from a policy that
// prefers rock, the averaged policy's exploitability falls toward the mixed equilibrium, and each
// iteration's trained policy tracks the closed form pi_t exp(eta P^)/Z: over the full vocabulary
// the other tokens absorb the normalisation, so the SPPO objective's minimiser restricted to the
// kinds is exactly the closed form (test/sppo.theory.kernel.test.ts covers the tabular case).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRandomModel, type EngineModel } from '../src/model/engine.js';
import { tinyConfig } from './helpers/tinyModels.js';
import type { PreferencePair, ScoredSequence } from '../src/model/types.js';
import { createJudge } from '../src/judge/factory.js';
import type { Judge } from '../src/judge/types.js';
import { trainRows } from '../src/sppo/trainTable.js';
import { winRates } from '../src/sppo/winRates.js';
import { exploitability } from '../src/sppo/theory.js';
import { seededRandom } from './sppo.seed.js';
import { stratifiedRollout } from './helpers/stratifiedRollout.js';

const KINDS = ['rock', 'paper', 'scissors'];
const TOKENS = [10, 11, 12]; // the kind tokens of the tiny vocabulary
const PROMPT = [1, 20, 21];
const PROMPT_TEXT = 'rock, paper or scissors?';
const T = 30;      // SPPO iterations
const K = 30;      // responses per rollout
const STEPS = 60;  // optimizer steps per iteration (one full batch each), lr decaying linearly to 0
const ETA = 1;

const seq = (kind: number): ScoredSequence => ({ tokens: [...PROMPT, TOKENS[kind]!], promptLength: PROMPT.length });

/** log pi(kind token | prompt) over the full vocabulary, and the policy restricted to the kinds. */
async function kindPolicy(model: EngineModel): Promise<{ logp: number[]; pi: number[] }> {
  const logp = [...(await model.sequenceLogprobs(KINDS.map((_, k) => seq(k))))];
  const m = Math.max(...logp);
  const e = logp.map((l) => Math.exp(l - m));
  const z = e.reduce((a, b) => a + b, 0);
  return { logp, pi: e.map((v) => v / z) };
}

describe('SPPO through the engine on a tiny model with rock-paper-scissors responses (builtin:cyclic)', () => {
  let model: EngineModel;
  let judge: Judge;
  let P: number[][];
  const iterates: number[][] = [];
  const closedMiss: number[] = [];
  const stepSize: number[] = [];

  beforeAll(async () => {
    const { seed, rand } = seededRandom('theory through the engine');
    model = await createRandomModel(tinyConfig('llama2'), seed % 1_000_000);
    judge = await createJudge('builtin:cyclic?kinds=rock,paper,scissors&p=0.9');
    P = (await judge.judge([{ prompt: PROMPT_TEXT, responses: KINDS }]))[0]!.probability;
    const trainer = await model.createTrainer({ optimizer: { kind: 'adamw', weightDecay: 0 } });

    // A start away from the equilibrium: a few DPO steps that prefer rock.
    const start = await kindPolicy(model);
    for (let s = 0; s < 200 && (await kindPolicy(model)).pi[0]! < 0.6; s++) {
      const pairs: PreferencePair[] = [1, 2].map((l) => ({
        chosen: seq(0), rejected: seq(l), refChosen: start.logp[0]!, refRejected: start.logp[l]!,
        chosenProbs: 1, chosenProbsWin: 1, chosenProbsLose: 0,
      }));
      await trainer.accumulate(pairs, 'dpo', 1, 1);
      await trainer.step(0.01, 1);
    }

    for (let t = 1; t <= T; t++) {
      const { logp, pi } = await kindPolicy(model);
      iterates.push(pi);
      const kinds = stratifiedRollout(pi, K, rand());
      const responses = kinds.map((k) => KINDS[k]!);
      const [judgment] = await judge.judge([{ prompt: PROMPT_TEXT, responses }]);
      const rates = winRates(judgment!.probability);
      const pHat = new Array<number>(KINDS.length).fill(NaN);
      kinds.forEach((k, i) => (pHat[k] = rates[i]!));
      const kindOf = (m: { content: string }[]) => KINDS.indexOf(m[1]!.content);
      const pairs: PreferencePair[] = trainRows({ promptIndex: t, prompt: PROMPT_TEXT, responses, ...judgment! }, 'all').map((r) => {
        const w = kindOf(r.chosen), l = kindOf(r.rejected);
        return {
          chosen: seq(w), rejected: seq(l), refChosen: logp[w]!, refRejected: logp[l]!,
          chosenProbs: r.chosenProbs, chosenProbsWin: r.chosenProbsWin, chosenProbsLose: r.chosenProbsLose,
        };
      });
      for (let s = 0; s < STEPS; s++) {
        await trainer.accumulate(pairs, 'sppo', 1 / ETA, 1);
        await trainer.step(0.02 * (1 - s / STEPS), 1);
      }
      const next = (await kindPolicy(model)).pi;
      // Closed form on the kinds present in the rollout (a kind absent from it has no target).
      const present = KINDS.map((_, k) => kinds.includes(k));
      const logClosed = pi.map((v, k) => (present[k] ? Math.log(v) + ETA * pHat[k]! : -Infinity));
      const lse = Math.log(logClosed.reduce((a, l) => a + Math.exp(l), 0));
      const logNextPresent = Math.log(next.reduce((a, v, k) => (present[k] ? a + v : a), 0));
      const miss = Math.max(...next.map((v, k) => (present[k] ? Math.abs(Math.log(v) - logNextPresent - (logClosed[k]! - lse)) : 0)));
      closedMiss.push(miss);
      stepSize.push(Math.max(...next.map((_, k) => (present[k] ? Math.abs(logClosed[k]! - lse - Math.log(pi[k]!) + Math.log(pi.reduce((a, u, j) => (present[j] ? a + u : a), 0))) : 0))));
    }
    iterates.push((await kindPolicy(model)).pi);
  });

  afterAll(async () => {
    model?.free();
    await judge?.close();
  });

  it('each trained iterate follows the closed form pi_t exp(eta P^)/Z (within a fifth of the step)', () => {
    console.log(`[theory through the engine] closed-form miss / step: ${closedMiss.map((m, i) => (m / stepSize[i]!).toFixed(3)).join(' ')}`);
    for (let i = 0; i < closedMiss.length; i++) expect(closedMiss[i]!).toBeLessThanOrEqual(0.2 * stepSize[i]!);
  });

  it(`the averaged policy moves toward the mixed equilibrium: its exploitability after T = ${T} iterations is under half the start's`, () => {
    const avg = (n: number) => KINDS.map((_, k) => iterates.slice(0, n).reduce((a, pi) => a + pi[k]!, 0) / n);
    const e = Array.from({ length: T }, (_, n) => exploitability(P, avg(n + 1)));
    console.log(`[theory through the engine] start ${iterates[0]!.map((v) => v.toFixed(3)).join('/')}; exploitability of the average: ${e.map((v) => v.toFixed(3)).join(' ')}`);
    expect(e[0]!).toBeGreaterThan(0.15);
    expect(e[T - 1]!).toBeLessThan(e[0]! / 2);
  });
});
