// The reward-model judge's bookkeeping, with a stand-in engine (the real engine has its own suites):
// rewards flow from the engine's scores() to P_ij = sigma((r_i - r_j)/tau), in chunks, per prompt.
import { describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import type { ModelHandle } from '../src/model/types.js';
import { createJudge } from '../src/judge/factory.js';
import { sigmoid } from '../src/judge/matrix.js';
import { seededRandom } from './sppo.seed.js';

function fakeEngine(reward: (tokens: number[]) => number, isRewardModel = true) {
  const calls: number[] = [];
  let freed = 0;
  const model = {
    folder: '/rm',
    isRewardModel,
    async scores(seqs: number[][]) {
      calls.push(seqs.length);
      return Float32Array.from(seqs.map(reward));
    },
    free() {
      freed++;
    },
  } as unknown as ModelHandle;
  return { model, calls, freed: () => freed };
}

// Token ids of a conversation: character codes, so rewards are a function of the text.
const tokens = (_folder: string, prompt: string, response: string) => [...`${prompt}|${response}`].map((c) => c.codePointAt(0)!);

describe('reward-model judge', () => {
  it('turns rewards into Bradley-Terry matrices, chunking engine calls', async () => {
    const { rand } = seededRandom('reward model');
    const weights = Array.from({ length: 128 }, () => rand() - 0.5);
    // float32 rewards, as the engine returns them.
    const reward = (t: number[]) => Math.fround(t.reduce((a, id) => a + weights[id % 128]!, 0));
    const engine = fakeEngine(reward);
    const folders: string[] = [];
    const judge = await createJudge('reward-model:models/rm?tau=0.7&batch=3', {
      cwd: '/work',
      loadModel: async (folder) => {
        folders.push(folder);
        return engine.model;
      },
      rewardModelTokens: tokens,
    });
    expect(folders).toEqual([resolve('/work', 'models/rm')]);
    const batch = Array.from({ length: 3 }, (_, b) => ({
      prompt: `prompt ${b}`,
      responses: Array.from({ length: 2 + b }, () => rand().toString(36).slice(2)),
    }));
    const out = await judge.judge(batch);
    expect(engine.calls).toEqual([3, 3, 3]); // 2 + 3 + 4 sequences in chunks of 3
    out.forEach((j, b) => {
      const r = batch[b]!.responses.map((y) => reward(tokens('', batch[b]!.prompt, y)));
      expect(j.scores).toEqual(r);
      j.probability.forEach((row, i) => row.forEach((v, k) => expect(v).toBeCloseTo(i === k ? 0.5 : sigmoid((r[i]! - r[k]!) / 0.7), 14)));
    });
    await judge.close();
    await judge.close();
    expect(engine.freed()).toBe(1);
    await expect(judge.judge(batch)).rejects.toThrow(/judge 'reward-model:models\/rm\?tau=0\.7&batch=3' is closed/);
  });

  it('refuses a model that is not a reward model, and non-finite rewards', async () => {
    const notRm = fakeEngine(() => 0, false);
    await expect(createJudge('reward-model:/m/policy', { loadModel: async () => notRm.model, rewardModelTokens: tokens })).rejects.toThrow(
      /judge 'reward-model:\/m\/policy': \/m\/policy is not a reward model \(expected a LlamaForSequenceClassification checkpoint/,
    );
    expect(notRm.freed()).toBe(1);
    const nan = fakeEngine((t) => (t.length > 5 ? NaN : 1));
    const judge = await createJudge('reward-model:/m/rm', { loadModel: async () => nan.model, rewardModelTokens: tokens });
    await expect(judge.judge([{ prompt: 'p', responses: ['a', 'longer'] }])).rejects.toThrow(/reward of batch item 0, response 1 is NaN \(not finite\)/);
    await expect(createJudge('reward-model:/m/rm?batch=1.5', { loadModel: async () => nan.model, rewardModelTokens: tokens })).rejects.toThrow(/option batch must be a positive integer/);
  });
});
