// The iteration driver on a fake model (test/helpers/fakeModel.ts): every stage's files, reference
// columns, seeds independent of batching, micro-batch accumulation, NaN losses, judges that crash
// or print malformed lines, bad inputs, the lock, and resume after each failure.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { train } from '../src/pipeline/pipeline.js';
import type { Recipe } from '../src/recipe/types.js';
import { DEMO_DIR } from '../src/pipeline/demo.js';
import { readParquet } from '../src/data/parquet.js';
import { runRollout, type RolloutOptions } from '../src/stages/rollout.js';
import { engineSource } from '../src/stages/responseSource.js';
import { TextCodec } from '../src/text/codec.js';
import { runTraining } from '../src/stages/train.js';
import type { GenerateOptions, ModelHandle, PreferencePair } from '../src/model/types.js';
import { fakeRunRecipe, fakeWeights } from './helpers/fakeRun.js';
import { fakeProvider, FakeModel } from './helpers/fakeModel.js';
import { seededRandom } from './sppo.seed.js';

const root = mkdtempSync(join(tmpdir(), 'sppo-stages-'));
const { seed: testSeed, rand } = seededRandom('pipeline.stages');

const recipe = (name: string, patch?: (r: Recipe) => void): Recipe =>
  fakeRunRecipe({ root, promptFile: join(DEMO_DIR, 'prompts.jsonl'), maxPrompts: 10, seed: testSeed }, name, patch);

const weights = fakeWeights;

describe('an SPPO run on a fake model', () => {
  it('writes every stage with the reference columns, and the selected epoch becomes the next policy', async () => {
    const r = recipe('full');
    const res = await train(r, { provider: fakeProvider() });
    expect(res.iterations).toHaveLength(2);
    const it1 = join(r.output, 'iter-1');
    const gen = await readParquet(join(it1, 'generated.parquet'));
    expect(gen.columns.slice(0, 6)).toEqual(['prompt', 'prompt_index', 'prompt_tokens', 'generate_0', 'generate_1', 'generate_2']);
    expect(gen.columns).toEqual(expect.arrayContaining(['num_tokens_0', 'finish_reason_2', 'response_tokens_1']));
    expect(gen.rows).toHaveLength(10);
    const row = gen.rows[0]!;
    expect(row.generate_0).toEqual([{ content: row.prompt, role: 'user' }, { content: expect.any(String), role: 'assistant' }]);
    const judged = await readParquet(join(it1, 'judged.parquet'));
    expect(judged.columns).toEqual(['prompt', 'prompt_index', 'generate_0', 'generate_1', 'generate_2', 'probability', 'rm_scores']);
    const tt = await readParquet(join(it1, 'train.parquet'));
    expect(tt.columns.slice(0, 5)).toEqual(['chosen', 'rejected', 'chosen_probs', 'chosen_probs_win', 'chosen_probs_lose']);
    expect(tt.rows).toHaveLength(10); // best-worst: one pair per prompt
    const metrics = readFileSync(join(it1, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    expect(metrics).toHaveLength(2 * Math.ceil(10 / 4));
    for (const k of ['loss', 'rewards/chosen', 'rewards/rejected', 'rewards/margins', 'rewards/accuracies', 'logps/chosen', 'logps/rejected', 'lr', 'grad_norm', 'tokens/s']) {
      expect(metrics.every((m) => Number.isFinite(m[k])), k).toBe(true);
    }
    // Warmup of w = ceil(0.2 * 6) = 2 steps starts at lr/w, not at 0 as transformers (src/stages/schedule.ts).
    expect(metrics[0]!.lr).toBeCloseTo(r.train.lr / 2, 15);
    expect(metrics[1]!.lr).toBeCloseTo(r.train.lr, 15);
    expect(existsSync(join(it1, 'checkpoint-epoch-1', 'weights.json'))).toBe(true);
    expect(existsSync(join(it1, 'checkpoint-epoch-2', 'tokenizer.json'))).toBe(true);
    expect(res.iterations[0]!.policy).toBe(join(it1, 'checkpoint-epoch-1'));
    expect(res.finalModel).toBe(join(r.output, 'iter-2', 'checkpoint-epoch-1'));
    // Iteration 2 samples from iteration 1's selected checkpoint: its prompts are a disjoint part.
    const p1 = readFileSync(join(it1, 'prompts.jsonl'), 'utf8').split('\n').filter(Boolean);
    const p2 = readFileSync(join(r.output, 'iter-2', 'prompts.jsonl'), 'utf8').split('\n').filter(Boolean);
    expect(p1.filter((p) => p2.includes(p))).toEqual([]);
    expect(readFileSync(join(r.output, 'recipe.resolved.yaml'), 'utf8')).toContain('eta: 10');
    // Rerunning a finished run does no work.
    const again = fakeProvider();
    await train(r, { provider: again });
    expect(again.hooks.calls).toMatchObject({ generate: 0, accumulate: 0 });
  });

  it('takes one prompt file per iteration, and pairs every response under `all`', async () => {
    const files = [0, 1].map((t) => {
      const f = join(root, `iter${t}.jsonl`);
      writeFileSync(f, Array.from({ length: 3 + t }, (_, i) => JSON.stringify({ text: `prompt ${t} ${i} sky` })).join('\n'));
      return f;
    });
    const r = recipe('perfile', (x) => { x.prompts = files; x.promptColumn = 'text'; x.sppo.pairing = 'all'; });
    const res = await train(r, { provider: fakeProvider() });
    expect(res.iterations.map((s) => s.prompts)).toEqual([3, 4]);
    expect(res.iterations.map((s) => s.pairs)).toEqual([3 * 3, 4 * 3]); // K = 3 rows per prompt
    const p2 = readFileSync(join(r.output, 'iter-2', 'prompts.jsonl'), 'utf8');
    expect(p2).toContain('prompt 1 3 sky');
  });

  it('samples do not depend on batch or shard size', async () => {
    const codec = TextCodec.load(DEMO_DIR);
    const provider = fakeProvider();
    const model = await provider.createRandom({ vocab_size: 125, eos_token_id: 2 }, 5, 'cpu');
    const prompts = Array.from({ length: 7 }, (_, i) => `tell me about the sky ${'red '.repeat(i)}`);
    const seen: GenerateOptions[] = [];
    const spy: ModelHandle = Object.assign(Object.create(model) as ModelHandle, {
      generate: (p: number[][], s: number[], o: GenerateOptions) => (seen.push(o), model.generate(p, s, o)),
    });
    const run = async (name: string, batchSize: number, shardSize: number, budget: Partial<RolloutOptions> = {}) => {
      const dir = join(root, name);
      await runRollout({ source: async () => engineSource(spy, codec), codec, prompts, dir, output: join(dir, 'g.parquet'), iteration: 1,
        opts: { k: 3, temperature: 1, topP: 1, maxNewTokens: 5, batchSize, shardSize, maxPromptTokens: 32, seed: 3, ...budget } });
      return (await readParquet(join(dir, 'g.parquet'))).rows;
    };
    const a = await run('seedA', 1, 7);
    expect(seen[0]).toMatchObject({ maxBatchTokens: 0, maxRunningSequences: 0, maxCacheTokens: 0 });  // automatic
    const b = await run('seedB', 1 + Math.floor(rand() * 6), 1 + Math.floor(rand() * 6));
    expect(b).toEqual(a);
    // The engine's batching budgets reach its generate calls.
    seen.length = 0;
    expect(await run('seedC', 7, 7, { maxBatchTokens: 40, maxRunningSequences: 6, maxCacheTokens: 512 })).toEqual(a);
    expect(seen[0]).toMatchObject({ maxBatchTokens: 40, maxRunningSequences: 6, maxCacheTokens: 512 });
    // ...and they differ between prompts and between samples.
    expect(new Set(a.flatMap((r) => [0, 1, 2].map((k) => JSON.stringify(r[`response_tokens_${k}`])))).size).toBeGreaterThan(15);
  });

  it('micro-batches accumulate to the global batch', async () => {
    const provider = fakeProvider();
    const pairs: PreferencePair[] = Array.from({ length: 8 }, () => {
      const seq = () => ({ tokens: [1, 3, ...Array.from({ length: 1 + Math.floor(rand() * 5) }, () => 5 + Math.floor(rand() * 100))], promptLength: 2 });
      const pw = rand();
      return { chosen: seq(), rejected: seq(), refChosen: -10 * rand(), refRejected: -10 * rand(), chosenProbs: pw, chosenProbsWin: pw, chosenProbsLose: rand() };
    });
    const final = async (micro: number): Promise<number[]> => {
      const r = recipe(`micro${micro}`, (x) => Object.assign(x.train, { globalBatch: 8, microBatch: micro, epochs: 1, lr: 0.01, schedule: 'constant', warmupRatio: 0 }));
      mkdirSync(r.output, { recursive: true });
      const res = await runTraining({
        iteration: 1, dir: r.output, recipe: r, pairs, tokenizerFrom: DEMO_DIR,
        loadPolicy: () => provider.createRandom({ vocab_size: 125 }, 9, 'cpu'),
        loadFolder: (f) => provider.load(f, 'cpu'),
      });
      return Array.from((res.model as FakeModel).w);
    };
    const one = await final(8);
    for (const micro of [1, 2, 4]) {
      const w = await final(micro);
      w.forEach((v, i) => expect(v).toBeCloseTo(one[i]!, 10));
    }
  });
});

describe('failures keep finished work and a rerun resumes', () => {
  it('a NaN loss stops with a clear message; the rerun resumes and ends as an uninterrupted run', async () => {
    const ref = recipe('nan-ref');
    const refRes = await train(ref, { provider: fakeProvider() });
    const r = recipe('nan');
    const nanAt = 3 + Math.floor(rand() * 6);
    await expect(train(r, { provider: fakeProvider({ nanAtAccumulate: nanAt }) })).rejects.toThrow(
      /iteration 1, step \d+: the loss is NaN .*lower the learning rate .*rerun the same command to resume at step \d+/,
    );
    expect(existsSync(join(r.output, 'iter-1', 'generated.parquet'))).toBe(true);
    expect(existsSync(join(r.output, 'iter-1', 'resume'))).toBe(true);
    expect(existsSync(join(r.output, '.lock'))).toBe(false);
    const second = fakeProvider();
    const res = await train(r, { provider: second });
    expect(second.hooks.calls!.generate).toBeGreaterThan(0); // iteration 2's rollout
    expect(readFileSync(join(r.output, 'iter-1', 'train.parquet'))).toEqual(readFileSync(join(ref.output, 'iter-1', 'train.parquet')));
    expect(weights(res.finalModel)).toEqual(weights(refRes.finalModel));
    const m1 = readFileSync(join(r.output, 'iter-1', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step as number);
    expect(m1).toEqual(m1.map((_, i) => i + 1)); // each step once, in order
  });

  it('a judge that crashes or prints malformed lines fails clearly; the rollout is kept', async () => {
    const modeFile = join(root, 'judge-mode');
    const script = join(root, 'judge.mjs');
    writeFileSync(script, `
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
console.log(JSON.stringify({ protocol: 'sppo-judge', version: 1 }));
const mode = readFileSync(${JSON.stringify(modeFile)}, 'utf8').trim();
createInterface({ input: process.stdin }).on('line', (line) => {
  const req = JSON.parse(line);
  if (mode === 'crash') { console.error('judge: out of memory'); process.exit(3); }
  if (mode === 'malformed') { console.log('{"id": ' + req.id + ', "scores": [1, 2'); return; }
  console.log(JSON.stringify({ id: req.id, scores: req.responses.map((r) => r.length) }));
});
`);
    const r = recipe('judge', (x) => { x.judge = `command:node ${script}`; x.iterations = 1; });
    writeFileSync(modeFile, 'crash');
    await expect(train(r, { provider: fakeProvider() })).rejects.toThrow(/judge 'command:node .*judge.mjs'.*(exit|crash|code 3)/is);
    expect(existsSync(join(r.output, 'iter-1', 'generated.parquet'))).toBe(true);
    writeFileSync(modeFile, 'malformed');
    const p2 = fakeProvider();
    await expect(train(r, { provider: p2 })).rejects.toThrow(/judge 'command:node .*judge.mjs'.*(malformed|JSON|parse)/is);
    expect(p2.hooks.calls!.generate).toBe(0); // the rollout was not redone
    writeFileSync(modeFile, 'ok');
    const p3 = fakeProvider();
    const res = await train(r, { provider: p3 });
    expect(p3.hooks.calls!.generate).toBe(0);
    expect(res.iterations[0]!.pairs).toBe(10);
  });

  it('bad inputs get clear errors', async () => {
    await expect(train(recipe('bad1', (x) => { x.model = join(root, 'no-model'); }), { provider: fakeProvider() })).rejects.toThrow(/no-model has no config.json/);
    await expect(train(recipe('bad2', (x) => { x.prompts = [join(root, 'no.jsonl')]; }), { provider: fakeProvider() })).rejects.toThrow(/prompt file .*no.jsonl does not exist/);
    // Fixing the input and rerunning into the same folder is not a "changed recipe".
    expect((await train(recipe('bad2', (x) => { x.iterations = 1; }), { provider: fakeProvider() })).iterations).toHaveLength(1);
    const cols = join(root, 'q.jsonl');
    writeFileSync(cols, '{"question": "why"}\n');
    await expect(train(recipe('bad3', (x) => { x.prompts = [cols]; }), { provider: fakeProvider() })).rejects.toThrow(/no column 'prompt' \(columns: question\)/);
    const empty = join(root, 'e.jsonl');
    writeFileSync(empty, '{"prompt": ""}\n');
    await expect(train(recipe('bad4', (x) => { x.prompts = [empty]; }), { provider: fakeProvider() })).rejects.toThrow(/no usable prompts/);
    await expect(train(recipe('bad5', (x) => { x.judge = 'oracle:x'; }), { provider: fakeProvider() })).rejects.toThrow(/judge spec 'oracle:x' is not understood/);
  });

  it('refuses a second process and a changed recipe on the same run folder', async () => {
    const r = recipe('lock', (x) => { x.iterations = 1; });
    mkdirSync(r.output, { recursive: true });
    writeFileSync(join(r.output, '.lock'), `${process.ppid}\n`); // a live process
    await expect(train(r, { provider: fakeProvider() })).rejects.toThrow(/is in use by process/);
    rmSync(join(r.output, '.lock'));
    await train(r, { provider: fakeProvider() });
    await expect(train({ ...r, rollout: { ...r.rollout, k: 4 } }, { provider: fakeProvider() })).rejects.toThrow(/different recipe: rollout.k \(was 3, now 4\)/);
  });
});
