// Checks made before the first rollout of a run, when fixing a setting costs nothing: settings that
// would make iterations train nothing (warned about loudly), and a command judge started once to
// see that it runs and handshakes (a rollout can take hours; a judge that cannot start should not
// be found after it).
import type { Recipe } from '../recipe/types.js';
import type { JudgeContext } from '../judge/factory.js';
import { createJudge } from '../judge/factory.js';
import { parseJudgeSpec } from '../judge/spec.js';
import { planTraining } from '../stages/train.js';
import { learningRate } from '../stages/schedule.js';
import type { EventSink } from '../util/events.js';
import { WAIT_NOTICE_MS, withWaitNotice } from '../util/waitNotice.js';
import { formatDuration } from '../util/progress.js';

/** Training pairs an iteration of `prompts` prompts makes: one per prompt, K under `all` pairing. */
export function pairsOf(recipe: Recipe, prompts: number): number {
  return prompts * (recipe.sppo.pairing === 'all' ? recipe.rollout.k : 1);
}

/** Warnings about `recipe` for the iterations still to run (t -> its number of prompts). */
export function trainingWarnings(recipe: Recipe, iterations: ReadonlyMap<number, number>): string[] {
  const out: string[] = [];
  if (iterations.size === 0) return out;
  if (recipe.rollout.temperature === 0) {
    out.push(
      'rollout.temperature is 0: sampling is greedy, so the K responses of a prompt are identical and every training pair has ' +
        'chosen = rejected; the SPPO loss and its gradients are then 0 and the policy does not change. Use a temperature above 0 ' +
        '(the reference uses 0.7). Each iteration summary counts such pairs (identicalPairs)',
    );
  }
  const single: string[] = [];
  for (const [t, prompts] of iterations) {
    const plan = planTraining(pairsOf(recipe, prompts), recipe.train);
    if (plan.totalSteps === 1) single.push(`${t} (${plan.pairs} pairs)`);
  }
  if (single.length) {
    const lr = learningRate(recipe.train.schedule, recipe.train.lr, 0, 1, planTraining(1, recipe.train).warmup);
    out.push(
      `iteration(s) ${single.join(', ')} have no more pairs than train.globalBatch (${recipe.train.globalBatch}) and one epoch: ` +
        `each trains ONE optimizer step, at lr ${lr.toPrecision(3)}. (With transformers' warmup, which the reference uses, that ` +
        'step would have learning rate 0 and the checkpoint would equal its starting policy; sppo-native\'s warmup starts above 0.) ' +
        'For a real iteration use more prompts (--max-prompts), a smaller --global-batch, or more --epochs',
    );
  }
  return out;
}

/** Starts a command judge, waits for its handshake and ends it; other judges are checked elsewhere. */
export async function preflightJudge(spec: string, ctx: JudgeContext, onEvent: EventSink, waitNoticeMs = WAIT_NOTICE_MS): Promise<void> {
  if (parseJudgeSpec(spec).kind !== 'command') return;
  const t0 = Date.now();
  const limit = ctx.commandStartupTimeoutMs === undefined ? '' : `; it is stopped after ${ctx.commandStartupTimeoutMs / 1000} s (--judge-startup-timeout)`;
  const judge = await withWaitNotice(createJudge(spec, ctx), waitNoticeMs, (ms) =>
    onEvent({ type: 'log', message: `waiting for the handshake of judge '${spec}' for ${formatDuration(ms / 1000)}${limit}` }),
  );
  await judge.close();
  onEvent({
    type: 'log',
    message: `judge '${spec}' started and handshook in ${((Date.now() - t0) / 1000).toFixed(1)} s (a check before the rollout; it is started again to judge)`,
  });
}
