// Runs that would train nothing, or sample past the model's context, say so before the work and
// do what a user wants (issue 12, item 3): a single optimizer step trains at a learning rate above
// 0; temperature 0 is warned about and its identical pairs counted; sampling stops at
// max_position_embeddings with a warning.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { train } from '../src/pipeline/pipeline.js';
import { generate } from '../src/api.js';
import type { Recipe } from '../src/recipe/types.js';
import { DEMO_DIR } from '../src/pipeline/demo.js';
import { readRollout } from '../src/stages/rollout.js';
import { readTrainTable } from '../src/sppo/trainTable.js';
import type { PipelineEvent } from '../src/util/events.js';
import { fakeRunRecipe, fakeWeights } from './helpers/fakeRun.js';
import { fakeProvider } from './helpers/fakeModel.js';
import { seededRandom } from './sppo.seed.js';

const root = mkdtempSync(join(tmpdir(), 'sppo-warnings-'));
const { seed } = seededRandom('pipeline.warnings');
const recipe = (name: string, patch?: (r: Recipe) => void): Recipe =>
  fakeRunRecipe({ root, promptFile: join(DEMO_DIR, 'prompts.jsonl'), maxPrompts: 8, seed }, name, patch);

function collect(): { sink: (e: PipelineEvent) => void; events: PipelineEvent[]; warnings: () => string[] } {
  const events: PipelineEvent[] = [];
  return { sink: (e) => events.push(e), events, warnings: () => events.filter((e) => e.type === 'warning').map((e) => (e as { message: string }).message) };
}

describe('settings that make a run train nothing', () => {
  it('an iteration of one optimizer step is warned about before the rollout and still trains (lr > 0)', async () => {
    // 4 prompts, global batch 4, one epoch: one step per iteration (the reference's warmup gives it lr 0).
    const r = recipe('one-step', (x) => {
      x.maxPrompts = 4;
      Object.assign(x.train, { globalBatch: 4, microBatch: 2, epochs: 1, selectedEpoch: 1, warmupRatio: 0.1 });
    });
    const c = collect();
    const res = await train(r, { provider: fakeProvider(), onEvent: c.sink });
    const firstRollout = c.events.findIndex((e) => e.type === 'stage' && e.stage === 'rollout');
    const warning = c.events.findIndex((e) => e.type === 'warning' && /ONE optimizer step/.test(e.message));
    expect(warning, c.warnings().join('\n')).toBeGreaterThanOrEqual(0);
    expect(warning).toBeLessThan(firstRollout);
    expect(c.warnings().join('\n')).toMatch(/iteration\(s\) 1 \(4 pairs\), 2 \(4 pairs\) have no more pairs than train.globalBatch \(4\)/);
    const m = JSON.parse(readFileSync(join(r.output, 'iter-1', 'metrics.jsonl'), 'utf8').trim()) as { lr: number };
    expect(m.lr).toBe(r.train.lr);
    // The checkpoint moved away from the base model.
    expect(fakeWeights(res.iterations[0]!.policy)).not.toEqual(fakeWeights(res.baseModel));
  });

  it('temperature 0 is warned about, and the iteration summary counts the identical pairs', async () => {
    const r = recipe('greedy', (x) => { x.rollout.temperature = 0; });
    const c = collect();
    const res = await train(r, { provider: fakeProvider(), onEvent: c.sink });
    expect(c.warnings().join('\n')).toMatch(/rollout.temperature is 0: sampling is greedy, so the K responses of a prompt are identical/);
    expect(c.warnings().join('\n')).toMatch(/iteration 1: 8 of 8 training pairs have chosen = rejected/);
    for (const s of res.iterations) expect(s.identicalPairs).toBe(s.pairs);
    const recorded = JSON.parse(readFileSync(join(r.output, 'iter-1', 'summary.json'), 'utf8')) as { identicalPairs: number };
    expect(recorded.identicalPairs).toBe(8);
    // A sampled run counts exactly the pairs whose two responses are the same tokens.
    const sr = recipe('sampled');
    const sampled = await train(sr, { provider: fakeProvider() });
    for (const [i, s] of sampled.iterations.entries()) {
      const dir = join(sr.output, `iter-${i + 1}`);
      const gen = new Map((await readRollout(join(dir, 'generated.parquet'))).rows.map((g) => [g.promptIndex, g]));
      const rows = await readTrainTable(join(dir, 'train.parquet'));
      const same = rows.filter((t) => JSON.stringify(gen.get(t.promptIndex)!.responseTokens[t.chosenIndex]) === JSON.stringify(gen.get(t.promptIndex)!.responseTokens[t.rejectedIndex]));
      expect(s.identicalPairs).toBe(same.length);
      expect(s.identicalPairs).toBeLessThan(s.pairs);
    }
  });
});

describe('the model\'s context window', () => {
  it('sampling stops at max_position_embeddings, with a warning, and prompts are cut to fit', async () => {
    const provider = fakeProvider();
    const config = { ...(JSON.parse(readFileSync(join(DEMO_DIR, 'model-config.json'), 'utf8')) as Record<string, unknown>), max_position_embeddings: 24 };
    const model = await provider.createRandom(config, 7, 'cpu');
    const folder = join(root, 'short-context');
    await model.save(folder, { tokenizerFrom: DEMO_DIR });
    const c = collect();
    // No EOS among the fake's tokens: every response runs to the limit.
    const file = await generate({
      model: folder, prompts: join(DEMO_DIR, 'prompts.jsonl'), maxPrompts: 6, output: join(root, 'gen-short'), k: 2,
      maxNewTokens: 100, maxPromptTokens: 30, temperature: 1, provider, onEvent: c.sink,
    });
    expect(c.warnings().join('\n')).toMatch(/its context window \(max_position_embeddings\) is 24 tokens, less than lengths.maxPromptTokens \(30\) \+ rollout.maxNewTokens \(100\): prompts are cut to their last 23 tokens/);
    const { rows } = await readRollout(file);
    expect(rows).toHaveLength(6);
    for (const row of rows) {
      expect(row.promptTokens.length).toBeLessThanOrEqual(23);
      for (const [j, toks] of row.responseTokens.entries()) {
        expect(row.promptTokens.length + toks.length).toBeLessThanOrEqual(24);
        if (row.promptTokens.length + toks.length === 24) expect(row.finishReasons[j]).toBe('length');
      }
    }
    expect(rows.some((row) => row.responseTokens.some((t) => row.promptTokens.length + t.length === 24))).toBe(true);
  });
});
