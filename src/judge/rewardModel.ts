// `reward-model:<folder>[?tau=1&batch=16]`: a LlamaForSequenceClassification checkpoint run on the
// engine; each response gets a reward r_i = score(prompt + response) and P_ij = sigma((r_i - r_j)/tau)
// (Bradley-Terry, tau = 1 as the reference's sigma(s_i - s_j)). The engine and the chat template
// come from the caller (JudgeContext), so this file depends on neither.
import type { ModelHandle } from '../model/types.js';
import type { Judge, JudgeInput, Judgment } from './types.js';
import { validateBatch } from './input.js';
import { checkOptions, positiveOption, type JudgeSpec } from './spec.js';
import { matrixFromScores } from './matrix.js';

export interface RewardModelContext {
  loadModel: (folder: string) => Promise<ModelHandle>;
  /** Token ids of one (prompt, response) conversation under the reward model's own chat template. */
  rewardModelTokens: (folder: string, prompt: string, response: string) => number[] | Promise<number[]>;
}

export async function createRewardModelJudge(s: JudgeSpec, ctx: Partial<RewardModelContext>, folder: string): Promise<Judge> {
  checkOptions(s, ['tau', 'batch']);
  const tau = positiveOption(s, 'tau', 1);
  const chunk = positiveOption(s, 'batch', 16);
  if (!Number.isInteger(chunk)) throw new Error(`judge spec '${s.spec}': option batch must be a positive integer (got ${chunk})`);
  if (!ctx.loadModel || !ctx.rewardModelTokens) {
    throw new Error(`judge '${s.spec}' needs a model engine: pass loadModel and rewardModelTokens in the judge context`);
  }
  const tokens = ctx.rewardModelTokens;
  const model = await ctx.loadModel(folder);
  if (!model.isRewardModel) {
    model.free();
    throw new Error(`judge '${s.spec}': ${folder} is not a reward model (expected a LlamaForSequenceClassification checkpoint with one label)`);
  }
  let closed = false;
  return {
    name: s.spec,
    async judge(batch: JudgeInput[]): Promise<Judgment[]> {
      validateBatch(batch, s.spec);
      if (closed) throw new Error(`judge '${s.spec}' is closed`);
      const seqs: number[][] = [];
      for (const x of batch) for (const r of x.responses) seqs.push(await tokens(folder, x.prompt, r));
      const rewards: number[] = [];
      for (let i = 0; i < seqs.length; i += chunk) {
        const out = await model.scores(seqs.slice(i, i + chunk));
        const want = Math.min(chunk, seqs.length - i);
        if (out.length !== want) throw new Error(`judge '${s.spec}': the engine returned ${out.length} rewards for ${want} sequences`);
        for (const v of out) rewards.push(v);
      }
      let at = 0;
      return batch.map((x, b) => {
        const scores = rewards.slice(at, (at += x.responses.length));
        scores.forEach((v, i) => {
          if (!Number.isFinite(v)) throw new Error(`judge '${s.spec}': reward of batch item ${b}, response ${i} is ${v} (not finite)`);
        });
        return { probability: matrixFromScores(scores, tau), scores };
      });
    },
    async close() {
      if (!closed) model.free();
      closed = true;
    },
  };
}
