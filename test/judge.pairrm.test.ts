// The pairrm judge (src/judge/pairrm.ts, src/pairrm/judge.ts) on tiny random PairRM folders and the
// real native model: its matrices are sigma(s_i - s_j) of llm-blender's aggregated scores of the
// comparison logits, each logit that of the collated pair under the float64 reference; a prompt's
// logits are bit for bit the same alone or batched with others in any order; templated and plain
// prompts; its options and errors; and a whole SPPO iteration judged by it in the pipeline.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createJudge } from '../src/judge/factory.js';
import { sigmoid, validateMatrix } from '../src/judge/matrix.js';
import type { JudgeInput } from '../src/judge/types.js';
import { PairRmJudge } from '../src/pairrm/judge.js';
import { collatePrompt, pairSequence, REFERENCE_LIMITS } from '../src/pairrm/collator.js';
import { readPairRmConfig } from '../src/pairrm/config.js';
import { PairRmTokenizer } from '../src/pairrm/tokenizer.js';
import { scoresFromComparisons } from '../src/pairrm/scores.js';
import { checkJudgeTarget } from '../src/pipeline/judgeCheck.js';
import { judgeGenerated, trainFromSources } from '../src/api.js';
import { readParquet } from '../src/data/parquet.js';
import { TextCodec } from '../src/text/codec.js';
import { referenceForward } from './helpers/pairrmReference.js';
import { writeTinyPairRm } from './helpers/pairrmFolder.js';
import { seededRandom } from './sppo.seed.js';

const root = mkdtempSync(join(tmpdir(), 'sppo-judge-pairrm-'));
const { seed, rand } = seededRandom('judge.pairrm');
const tiny = writeTinyPairRm(join(root, 'pairrm'), { seed });
const WORDS = ['the', 'red', 'cat', 'is', 'blue', 'sky', 'dog', 'hello', 'world', 'answer', 'yes', 'no', 'quiz'];
const text = (n: number): string => Array.from({ length: n }, () => WORDS[Math.floor(rand() * WORDS.length)]).join(' ');
const inputs = (n: number, k: number): JudgeInput[] =>
  Array.from({ length: n }, () => ({ prompt: text(1 + Math.floor(rand() * 12)), responses: Array.from({ length: k }, () => text(1 + Math.floor(rand() * 20))) }));

describe('the pairrm judge', () => {
  it('gives sigma(s_i - s_j) of mean_j (M_ij - M_ji), M the float64 reference logits of each ordered pair', async () => {
    const judge = (await createJudge(`pairrm:${tiny.folder}?prompt=plain&batch=3`)) as PairRmJudge;
    try {
      const batch = inputs(3, 4);
      batch[1]!.responses[2] = batch[1]!.responses[0]!; // identical responses are compared too
      const out = await judge.judge(batch);
      const cfg = readPairRmConfig(tiny.folder);
      const tok = PairRmTokenizer.load(tiny.folder, cfg.ids);
      out.forEach((j, b) => {
        validateMatrix(j.probability, `prompt ${b}`, 4);
        const segs = collatePrompt(tok, REFERENCE_LIMITS, batch[b]!.prompt, batch[b]!.responses);
        const m = batch[b]!.responses.map((_, i) =>
          batch[b]!.responses.map((__, k) => {
            if (i === k) return 0;
            const s = pairSequence(segs, i, k, tok.ids);
            return referenceForward(cfg.native, tiny.tensors, s.tokens, s.slots).logit;
          }),
        );
        const want = scoresFromComparisons(m);
        j.scores!.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThan(1e-4));
        j.probability.forEach((row, i) => row.forEach((p, k) => expect(Math.abs(p - (i === k ? 0.5 : sigmoid(j.scores![i]! - j.scores![k]!)))).toBeLessThan(1e-12)));
      });
    } finally {
      await judge.close();
    }
  });

  it('runs in its own precision=fp16 (emulated here), close to fp32 and closer than bf16, whatever the run\'s mode', async () => {
    const batch = inputs(3, 4);
    const scores = async (spec: string, precision?: 'fp32' | 'bf16'): Promise<number[]> => {
      const judge = (await createJudge(`pairrm:${tiny.folder}?prompt=plain${spec}`, precision ? { precision } : {})) as PairRmJudge;
      try {
        return (await judge.judge(batch)).flatMap((j) => j.scores!);
      } finally {
        await judge.close();
      }
    };
    const f32 = await scores('');
    const f16 = await scores('&precision=fp16', 'bf16'); // the spec's option wins over the run's bf16
    const b16 = await scores('', 'bf16');
    const err = (s: number[]): number => Math.max(...s.map((v, i) => Math.abs(v - f32[i]!)));
    const scale = Math.max(1, ...f32.map(Math.abs));
    console.log(`[judge.pairrm] scores off fp32 by ${err(f16).toExponential(2)} (fp16), ${err(b16).toExponential(2)} (bf16), scale ${scale.toFixed(2)}`);
    expect(err(f16)).toBeGreaterThan(0); // it does round
    expect(err(f16)).toBeLessThan(5e-3 * scale);
    expect(err(f16)).toBeLessThan(err(b16) / 2);
  });

  it("stops with the pair and a hint when an activation overflows fp16's 65504, where fp32 judges the same weights", async () => {
    // Layer 0's attention output bias at ~2e5: the residual before its LayerNorm is past fp16's range.
    const loud = writeTinyPairRm(join(root, 'loud'), { seed, scale: { 'layer.0.attention.output.dense.bias': 1e6 } });
    const batch = inputs(1, 2);
    const f32 = (await createJudge(`pairrm:${loud.folder}?prompt=plain`)) as PairRmJudge;
    try {
      for (const s of (await f32.judge(batch))[0]!.scores!) expect(Number.isFinite(s)).toBe(true);
    } finally {
      await f32.close();
    }
    const f16 = (await createJudge(`pairrm:${loud.folder}?prompt=plain&precision=fp16`)) as PairRmJudge;
    try {
      await expect(f16.judge(batch)).rejects.toThrow(/batch item 0, pair \(\d, \d\): the logit is NaN \(not finite\); in fp16 an activation may have overflowed 65504: judge with '\?precision=bf16'/);
    } finally {
      await f16.close();
    }
  });

  it("gives a prompt's pairs the same logits, bit for bit, alone or batched with others in any order", async () => {
    const judge = (await createJudge(`pairrm:${tiny.folder}?prompt=plain&batch=5&tokens=200`)) as PairRmJudge;
    try {
      const batch = inputs(5, 3);
      const together = await judge.comparisons(batch);
      for (let b = 0; b < batch.length; b++) expect(await judge.comparisons([batch[b]!])).toEqual([together[b]]);
      const reversed = await judge.comparisons([...batch].reverse());
      expect(reversed.reverse()).toEqual(together);
    } finally {
      await judge.close();
    }
  });

  it("ranks the prompt under the policy's chat template unless prompt=plain", async () => {
    const chatPrompt = (u: string): string => `<user> ${u} <assistant>`;
    const templated = await createJudge(`pairrm:${tiny.folder}`, { chatPrompt });
    const plain = await createJudge(`pairrm:${tiny.folder}?prompt=plain`, { chatPrompt });
    try {
      const batch = inputs(2, 3);
      const a = await templated.judge(batch);
      const b = await plain.judge(batch.map((x) => ({ ...x, prompt: chatPrompt(x.prompt) })));
      expect(a).toEqual(b);
      expect(await plain.judge(batch)).not.toEqual(a);
      await expect(createJudge(`pairrm:${tiny.folder}`)).rejects.toThrow(/no policy chat template is known here; .*--chat-template-model.*prompt=plain/);
    } finally {
      await templated.close();
      await plain.close();
    }
  });

  it('judges a single response as a tie with itself', async () => {
    const judge = await createJudge(`pairrm:${tiny.folder}?prompt=plain`);
    expect(await judge.judge([{ prompt: 'hello', responses: ['world'] }])).toEqual([{ probability: [[0.5]], scores: [0] }]);
    await judge.close();
    await expect(judge.judge([{ prompt: 'a', responses: ['b'] }])).rejects.toThrow(/is closed/);
  });

  it.each([
    ['?colour=red', /unknown option 'colour' \(accepted: prompt, batch, tokens, tau, source-max, candidate-max, precision\)/],
    ['?precision=fp8', /option precision must be fp32, bf16, fp16 \(got 'fp8'\)/],
    ['?precision=fp64', /option precision must be fp32, bf16, fp16 \(got 'fp64'\)/],
    ['?prompt=fancy', /option prompt must be templated or plain \(got 'fancy'\)/],
    ['?batch=0', /option batch must be a positive number/],
    ['?batch=2.5', /option batch must be a positive integer/],
    ['?source-max=2', /sourceMax must be an integer >= 3 \(got 2\)/],
  ])('refuses %s clearly', async (opts, msg) => {
    await expect(createJudge(`pairrm:${tiny.folder}${opts}`, { chatPrompt: (u) => u })).rejects.toThrow(msg);
    expect(() => checkJudgeTarget(`pairrm:${tiny.folder}${opts}`)).toThrow(msg);
  });

  it('is checked before a run starts: a folder that is not a PairRM folder is named', () => {
    expect(() => checkJudgeTarget(`pairrm:${join(root, 'nothing')}`)).toThrow(/PairRM folder .*nothing has no config.json/);
    expect(() => checkJudgeTarget(`pairrm:${tiny.folder}`)).not.toThrow();
  });
});

describe('an SPPO iteration judged by PairRM', () => {
  it('writes preference matrices that are the PairRM judge of the templated prompts', async () => {
    const out = join(root, 'run');
    const { result } = await trainFromSources({
      overrides: {
        judge: `pairrm:${tiny.folder}?batch=4`,
        output: out,
        iterations: 1,
        maxPrompts: 6,
        'rollout.k': 3,
        'rollout.shardSize': 3,
        'train.globalBatch': 2,
        'train.microBatch': 2,
        'eval.prompts': 4,
      },
    });
    expect(result.iterations).toHaveLength(1);
    const judged = await readParquet(join(out, 'iter-1', 'judged.parquet'));
    expect(judged.rows).toHaveLength(6);
    expect(existsSync(join(out, 'iter-1', 'train.parquet'))).toBe(true);
    // The same judge on the same rollouts, with the base model's chat template, gives the same matrices.
    const codec = TextCodec.load(join(out, 'base-model'));
    const judge = await createJudge(`pairrm:${tiny.folder}?batch=7`, { chatPrompt: (p) => codec.promptBeforeAnswer(p) });
    try {
      const rows = judged.rows as { prompt: string; probability: number[][]; rm_scores: number[] }[];
      const responses = (r: Record<string, unknown>): string[] =>
        [0, 1, 2].map((k) => (r[`generate_${k}`] as { content: string }[])[1]!.content);
      const again = await judge.judge(judged.rows.map((r) => ({ prompt: (r as { prompt: string }).prompt, responses: responses(r) })));
      rows.forEach((r, i) => {
        validateMatrix(r.probability, `row ${i}`, 3);
        r.probability.forEach((row, a) => row.forEach((p, b) => expect(Math.abs(p - again[i]!.probability[a]![b]!)).toBeLessThan(1e-6)));
        expect(r.rm_scores).toHaveLength(3);
      });
      // ... and not those of the bare user turns: the pipeline passed the policy's template.
      const plain = await createJudge(`pairrm:${tiny.folder}?prompt=plain`);
      const bare = await plain.judge(judged.rows.map((r) => ({ prompt: (r as { prompt: string }).prompt, responses: responses(r) })));
      await plain.close();
      expect(bare.map((j) => j.scores)).not.toEqual(again.map((j) => j.scores));
      // `sppo-native judge` on the run's generated table: the template from --chat-template-model.
      const generated = join(out, 'iter-1', 'generated.parquet');
      const spec = `pairrm:${tiny.folder}`;
      await expect(judgeGenerated({ input: generated, judge: spec, output: join(root, 'rejudged') })).rejects.toThrow(/--chat-template-model/);
      const re = await judgeGenerated({ input: generated, judge: spec, output: join(root, 'rejudged'), chatTemplateModel: join(out, 'base-model') });
      const rejudged = (await readParquet(re.judged)).rows as { probability: number[][] }[];
      rejudged.forEach((r, i) => r.probability.forEach((row, a) => row.forEach((p, b) => expect(Math.abs(p - rows[i]!.probability[a]![b]!)).toBeLessThan(1e-6))));
    } finally {
      await judge.close();
    }
  }, 120_000);
});
