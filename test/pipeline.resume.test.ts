// Resuming a run folder with settings that changed in between, on a fake model
// (test/helpers/fakeModel.ts): stable prompt parts, a fixed judge, eval settings, non-finite
// gradient norms, resume states removed when done, models freed on failure, early input checks,
// and `generate` refusing to mix options.
import { describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { train } from '../src/pipeline/pipeline.js';
import { evaluate, generate } from '../src/api.js';
import type { Recipe } from '../src/recipe/types.js';
import { DEMO_DIR } from '../src/pipeline/demo.js';
import { readParquet } from '../src/data/parquet.js';
import type { PipelineEvent } from '../src/util/events.js';
import { fakeRunRecipe, fakeWeights } from './helpers/fakeRun.js';
import { fakeProvider } from './helpers/fakeModel.js';
import { seededRandom } from './sppo.seed.js';

const root = mkdtempSync(join(tmpdir(), 'sppo-resume-'));
const { seed: testSeed, rand } = seededRandom('pipeline.resume');

// The demo prompts in a file of our own (tests edit it), in a random order each run.
const promptFile = join(root, 'prompts.jsonl');
const demoLines = readFileSync(join(DEMO_DIR, 'prompts.jsonl'), 'utf8').split('\n').filter(Boolean);
const shuffled = demoLines.map((l) => [rand(), l] as const).sort((a, b) => a[0] - b[0]).map(([, l]) => l);
writeFileSync(promptFile, `${shuffled.slice(0, 40).join('\n')}\n`);

const recipe = (name: string, patch?: (r: Recipe) => void): Recipe =>
  fakeRunRecipe({ root, promptFile: promptFile, maxPrompts: 8, seed: testSeed }, name, patch);

const weights = fakeWeights;
const pinned = (out: string, t: number): string[] => readFileSync(join(out, `iter-${t}`, 'prompts.jsonl'), 'utf8').split('\n').filter(Boolean);
const logs = (): { sink: (e: PipelineEvent) => void; text: () => string } => {
  const lines: string[] = [];
  return { sink: (e) => { if (e.type === 'log') lines.push(e.message); }, text: () => lines.join('\n') };
};

/** A command judge: handshakes, writes its pid, and per `mode` answers, crashes, or never answers. */
function judgeScript(name: string, mode: 'ok' | 'crash-after-4' | 'sleep'): { spec: string; pidFile: string } {
  const script = join(root, `${name}.mjs`);
  const pidFile = join(root, `${name}.pid`);
  writeFileSync(script, `
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
writeFileSync(${JSON.stringify(pidFile)}, String(process.pid));
console.log(JSON.stringify({ protocol: 'sppo-judge', version: 1 }));
createInterface({ input: process.stdin }).on('line', (line) => {
  const req = JSON.parse(line);
  if (${JSON.stringify(mode)} === 'sleep') { setInterval(() => {}, 1000); return; }
  if (${JSON.stringify(mode)} === 'crash-after-4' && req.id >= 4) { console.error('judge: out of memory'); process.exit(3); }
  console.log(JSON.stringify({ id: req.id, scores: req.responses.map((r) => r.length) }));
});
`);
  return { spec: `command:node ${script}`, pidFile };
}

describe('prompt parts stay disjoint across resumes', () => {
  it('pins every part at the start: an edited prompt file or more iterations never reuse prompts', async () => {
    const ref = recipe('parts-ref');
    await train(ref, { provider: fakeProvider() });
    const p1 = pinned(ref.output, 1);
    const p2 = pinned(ref.output, 2);
    expect(p1.filter((p) => p2.includes(p))).toEqual([]);
    // Resume states go once an iteration's training is done.
    for (const t of [1, 2]) expect(existsSync(join(ref.output, `iter-${t}`, 'resume'))).toBe(false);

    // A run that fails in iteration 1, whose prompt file is then edited, resumes with the parts it
    // pinned at its start and ends as the reference run.
    const own = join(root, 'own-prompts.jsonl');
    copyFileSync(promptFile, own);
    const r = recipe('parts-edit', (x) => { x.prompts = [own]; });
    const refOwn = recipe('parts-ref-own', (x) => { x.prompts = [own]; });
    const refOwnRes = await train(refOwn, { provider: fakeProvider() });
    await expect(train(r, { provider: fakeProvider({ nanAtAccumulate: 3 }) })).rejects.toThrow(/the loss is NaN/);
    writeFileSync(own, `${[...shuffled.slice(40, 60), ...shuffled.slice(0, 40).reverse()].join('\n')}\n`);
    const log = logs();
    const res = await train(r, { provider: fakeProvider(), onEvent: log.sink });
    expect(log.text()).toMatch(/own-prompts.jsonl changed since this run started; the run keeps the prompts pinned/);
    expect(pinned(r.output, 2)).toEqual(pinned(refOwn.output, 2));
    expect(pinned(r.output, 1).filter((p) => pinned(r.output, 2).includes(p))).toEqual([]);
    expect(weights(res.finalModel)).toEqual(weights(refOwnRes.finalModel));

    // `--iterations 1` then `--iterations 2`: one part was made, so a second iteration is refused.
    const one = recipe('parts-one', (x) => { x.iterations = 1; });
    await train(one, { provider: fakeProvider() });
    const p = fakeProvider();
    await expect(train({ ...one, iterations: 2 }, { provider: p })).rejects.toThrow(
      /split its prompts into 1 disjoint part\(s\), one per iteration.*at most 1 iteration.*iterations is now 2.*--iterations 1/,
    );
    expect(p.hooks.calls!.generate).toBe(0);
    expect(existsSync(join(one.output, 'iter-2', 'rollout'))).toBe(false);
    // Fewer iterations than parts is fine; a reuse split extends with the same prompts.
    expect((await train({ ...ref, iterations: 1 }, { provider: fakeProvider() })).iterations).toHaveLength(1);
    const reuse = recipe('parts-reuse', (x) => { x.iterations = 1; x.promptSplit = 'reuse'; });
    await train(reuse, { provider: fakeProvider() });
    await train({ ...reuse, iterations: 2 }, { provider: fakeProvider() });
    expect(pinned(reuse.output, 2)).toEqual(pinned(reuse.output, 1));
  });
});

describe('rollout.batchSize', () => {
  it('a run recorded with batchSize 16 (the former default) resumes with one call per shard, without regenerating, and ends as an uninterrupted run', async () => {
    const ref = recipe('batch-ref', (x) => { x.rollout.batchSize = 0; });
    const refRes = await train(ref, { provider: fakeProvider() });
    const r = recipe('batch-old', (x) => { x.rollout.batchSize = 16; });
    const at = 2 + Math.floor(rand() * 3); // fails in iteration 1's training, after its rollout
    await expect(train(r, { provider: fakeProvider({ nanGradAtStep: at }) })).rejects.toThrow(/gradient norm is NaN/);
    expect(readFileSync(join(r.output, 'recipe.resolved.yaml'), 'utf8')).toMatch(/batchSize: 16/);
    const shardDir = join(r.output, 'iter-1', 'rollout');
    const shards = (): string[] => readdirSync(shardDir).filter((n) => n.endsWith('.parquet')).map((n) => `${n} ${statSync(join(shardDir, n)).mtimeMs}`);
    const before = shards();
    expect(before).toHaveLength(2);
    const log = logs();
    const p = fakeProvider();
    const res = await train({ ...r, rollout: { ...r.rollout, batchSize: 0 } }, { provider: p, onEvent: log.sink });
    expect(log.text()).toMatch(/recipe changed on resume: rollout\.batchSize \(was 16, now 0\)/);
    expect(shards()).toEqual(before); // iteration 1's shards were kept, not generated again
    expect(weights(res.finalModel)).toEqual(weights(refRes.finalModel));
  });
});

describe('the judge', () => {
  it('may be fixed after it failed, while no shard of the iteration has been judged', async () => {
    const crash = judgeScript('judge-crash', 'crash-after-4');
    const r = recipe('judge-fix', (x) => { x.iterations = 1; x.judge = crash.spec; x.rollout.shardSize = 1; });
    // Shard size 1: one request per shard, ids 0, 1, ...; the judge crashes at id 4 (shard 5).
    await expect(train(r, { provider: fakeProvider() })).rejects.toThrow(/judging shard 5 of 8.*judge 'command:node .*judge-crash.mjs'/s);
    // A shard was judged with the crashing judge: switching judges now would mix two judges' shards.
    await expect(train({ ...r, judge: 'builtin:demo' }, { provider: fakeProvider() })).rejects.toThrow(/different recipe: judge \(was "command:node/);
    rmSync(join(r.output, 'iter-1', 'judged'), { recursive: true });
    const log = logs();
    const p = fakeProvider();
    const res = await train({ ...r, judge: 'builtin:demo' }, { provider: p, onEvent: log.sink });
    expect(log.text()).toMatch(/recipe changed on resume: judge \(was "command:node .*judge-crash.mjs", now "builtin:demo"\)/);
    expect(p.hooks.calls!.generate).toBe(0); // the rollout was kept
    expect(res.iterations[0]!.pairs).toBe(8);
  });

  it('targets are checked before any rollout', async () => {
    const rm = join(root, 'causal-lm');
    mkdirSync(rm, { recursive: true });
    copyFileSync(join(DEMO_DIR, 'model-config.json'), join(rm, 'config.json'));
    const cases: [string, RegExp][] = [
      [`precomputed:${join(root, 'nothing.jsonl')}`, /precomputed judge file .*nothing.jsonl does not exist/],
      [`reward-model:${join(root, 'no-rm')}`, /reward model folder .*no-rm has no config.json/],
      [`reward-model:${rm}`, /causal-lm is a LlamaForCausalLM, not a reward model/],
      ['builtin:oracle', /oracle/],
    ];
    for (const [i, [spec, msg]] of cases.entries()) {
      const p = fakeProvider();
      const r = recipe(`judge-check-${i}`, (x) => { x.judge = spec; });
      await expect(train(r, { provider: p })).rejects.toThrow(msg);
      expect(p.hooks.calls!.generate).toBe(0);
      expect(existsSync(join(r.output, 'iter-1', 'rollout'))).toBe(false);
    }
  });
});

describe('failures in training', () => {
  it('a non-finite gradient norm stops before the step; the rerun resumes and ends as an uninterrupted run', async () => {
    const ref = recipe('grad-ref');
    const refRes = await train(ref, { provider: fakeProvider() });
    const r = recipe('grad');
    const at = 2 + Math.floor(rand() * 3); // optimizer step 2..4 of iteration 1 (6 steps)
    await expect(train(r, { provider: fakeProvider({ nanGradAtStep: at }) })).rejects.toThrow(
      new RegExp(`iteration 1, step ${at}: the gradient norm is NaN .*rerun the same command to resume at step ${at}`),
    );
    const steps = readFileSync(join(r.output, 'iter-1', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);
    expect(steps).toEqual(Array.from({ length: at - 1 }, (_, i) => i + 1)); // the skipped step is not recorded
    expect(existsSync(join(r.output, 'iter-1', 'train.done.json'))).toBe(false);
    const res = await train(r, { provider: fakeProvider() });
    expect(weights(res.finalModel)).toEqual(weights(refRes.finalModel));
  });

  it('frees every model it loaded when a NaN loss stops a resumed run', async () => {
    const r = recipe('free', (x) => { x.iterations = 1; });
    const first = fakeProvider({ nanAtAccumulate: 5 });
    await expect(train(r, { provider: first })).rejects.toThrow(/the loss is NaN/);
    expect(first.hooks.models!.every((m) => m.freed)).toBe(true);
    const second = fakeProvider({ nanAtAccumulate: 2 }); // after resuming from the saved state
    await expect(train(r, { provider: second })).rejects.toThrow(/the loss is NaN/);
    expect(second.hooks.models!.length).toBeGreaterThan(0);
    expect(second.hooks.models!.filter((m) => !m.freed).map((m) => m.folder)).toEqual([]);
  });
});

describe('on the real engine', () => {
  it('a gradient that overflows stops training with a clear error (the engine skips the step)', async () => {
    const { createRandomModel } = await import('../src/model/engine.js');
    const { runTraining } = await import('../src/stages/train.js');
    const config = JSON.parse(readFileSync(join(DEMO_DIR, 'model-config.json'), 'utf8')) as Record<string, unknown>;
    const tok = (): number => 3 + Math.floor(rand() * 120);
    const seq = () => ({ tokens: [1, tok(), tok(), ...Array.from({ length: 1 + Math.floor(rand() * 4) }, tok)], promptLength: 3 });
    const pairs = Array.from({ length: 4 }, () => ({ chosen: seq(), rejected: seq(), refChosen: -20 * rand(), refRejected: -20 * rand(), chosenProbs: 0.9, chosenProbsWin: 1, chosenProbsLose: 0 }));
    // eta 1e38: the loss (about 1e75) is finite in float64, its float32 gradient is not.
    const r = recipe('engine-grad', (x) => { x.sppo.eta = 1e38; x.train = { ...x.train, globalBatch: 4, microBatch: 2, epochs: 1 }; });
    mkdirSync(r.output, { recursive: true });
    const model = await createRandomModel(config, 1 + Math.floor(rand() * 1000));
    try {
      await expect(runTraining({ iteration: 1, dir: r.output, recipe: r, pairs, tokenizerFrom: DEMO_DIR, loadPolicy: async () => model, loadFolder: async () => model }))
        .rejects.toThrow(/iteration 1, step 1: the gradient norm is (NaN|Infinity) .*training stopped before the optimizer step/);
    } finally {
      model.free();
    }
    expect(existsSync(join(r.output, 'metrics.jsonl')) ? readFileSync(join(r.output, 'metrics.jsonl'), 'utf8') : '').toBe('');
  });
});

describe('eval settings on resume', () => {
  it('recomputes the pinned eval prompts and base samples when eval.prompts or eval.samples change', async () => {
    const r = recipe('eval', (x) => { x.eval = { prompts: 4, samples: 1 }; });
    // Iteration 1 has 2 epochs x 2 steps x 2 micro-batches = 8 accumulate calls: fail in iteration 2.
    await expect(train(r, { provider: fakeProvider({ nanAtAccumulate: 10 }) })).rejects.toThrow(/iteration 2, step \d+: the loss is NaN/);
    const first = JSON.parse(readFileSync(join(r.output, 'iter-1', 'eval.json'), 'utf8')) as { n: number };
    expect(first.n).toBe(4);
    const before = readFileSync(join(r.output, 'eval', 'prompts.jsonl'), 'utf8').split('\n').filter(Boolean);
    const log = logs();
    const prompts = 6 + Math.floor(rand() * 3);
    await train({ ...r, eval: { prompts, samples: 2 } }, { provider: fakeProvider(), onEvent: log.sink });
    expect(log.text()).toMatch(new RegExp(`eval settings changed \\(prompts 4 -> ${prompts}, samples 1 -> 2\\)`));
    const second = JSON.parse(readFileSync(join(r.output, 'iter-2', 'eval.json'), 'utf8')) as { n: number };
    expect(second.n).toBe(2 * prompts);
    const base = await readParquet(join(r.output, 'eval', 'base.parquet'));
    expect(base.rows).toHaveLength(prompts);
    expect(base.columns).toContain('generate_1');
    // The seeded order makes the larger set extend the smaller one.
    expect(readFileSync(join(r.output, 'eval', 'prompts.jsonl'), 'utf8').split('\n').filter(Boolean).slice(0, 4)).toEqual(before);
  });
});

describe('early checks', () => {
  it('refuses a device the engine cannot use before the rollout, and evaluate checks everything before sampling', async () => {
    const seedModel = fakeProvider();
    const m = await seedModel.createRandom({ vocab_size: 125, eos_token_id: 2 }, 3, 'cpu');
    const folder = join(root, 'fake-model');
    await m.save(folder, { tokenizerFrom: DEMO_DIR });
    const p = fakeProvider();
    const r = recipe('cuda', (x) => { x.model = folder; x.device = 'cuda'; });
    await expect(train(r, { provider: p })).rejects.toThrow(/--device cuda cannot be used: fake model: device 'cuda' is not supported/);
    expect(existsSync(join(r.output, 'iter-1', 'rollout'))).toBe(false);
    expect(existsSync(join(r.output, 'recipe.resolved.yaml'))).toBe(false);

    const base = { modelA: folder, modelB: folder, prompts: promptFile, judge: 'builtin:demo', maxPrompts: 3, maxNewTokens: 4 };
    const bad: [Partial<Parameters<typeof evaluate>[0]>, RegExp][] = [
      [{ modelB: join(root, 'none') }, /model B: model folder .*none has no config.json/],
      [{ judge: `precomputed:${join(root, 'none.jsonl')}` }, /none.jsonl does not exist/],
      [{ device: 'cuda' }, /--device cuda cannot be used/],
    ];
    for (const [patch, msg] of bad) {
      const q = fakeProvider();
      await expect(evaluate({ ...base, ...patch, provider: q })).rejects.toThrow(msg);
      expect(q.hooks.calls!.generate).toBe(0);
    }
    const ok = await evaluate({ ...base, provider: fakeProvider() });
    expect(ok.n).toBe(3);
  });
});

describe('generate', () => {
  it('records its options and refuses to resume with different ones', async () => {
    const seedModel = fakeProvider();
    const m = await seedModel.createRandom({ vocab_size: 125, eos_token_id: 2 }, 4, 'cpu');
    const folder = join(root, 'gen-model');
    await m.save(folder, { tokenizerFrom: DEMO_DIR });
    const out = join(root, 'gen');
    const o = { model: folder, prompts: promptFile, output: out, maxPrompts: 5, k: 3, maxNewTokens: 4, shardSize: 2, seed: 7 };
    await generate({ ...o, provider: fakeProvider() });
    const first = readFileSync(join(out, 'generated.parquet'));
    const changes: [Record<string, unknown>, RegExp][] = [
      [{ k: 4 }, /other options: k \(was 3, now 4\)/],
      [{ seed: 8, temperature: 0.5 }, /temperature \(was 0.7, now 0.5\); seed \(was 7, now 8\)/],
      [{ maxPrompts: 4 }, /maxPrompts \(was 5, now 4\)/],
    ];
    for (const [patch, msg] of changes) {
      const p = fakeProvider();
      await expect(generate({ ...o, ...patch, provider: p })).rejects.toThrow(msg);
      expect(p.hooks.calls!.generate).toBe(0);
    }
    // The batch size and the engine's batching budgets do not change the samples: they may change.
    const p = fakeProvider();
    await generate({ ...o, batchSize: 3, maxBatchTokens: 64, maxRunningSequences: 6, maxCacheTokens: 4096, provider: p });
    expect(p.hooks.calls!.generate).toBe(0);
    expect(readFileSync(join(out, 'generated.parquet'))).toEqual(first);
    // Shards without a record (an older folder): K is checked when reading them.
    rmSync(join(out, 'generate.json'));
    await expect(generate({ ...o, k: 4, provider: fakeProvider() })).rejects.toThrow(/shard-00000.parquet holds 3 responses per prompt, but K is 4/);
    expect(readdirSync(join(out, 'rollout')).filter((n) => n.endsWith('.parquet'))).toHaveLength(3);
  });
});
