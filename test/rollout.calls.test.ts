// How the rollout splits its prompts into engine calls (rollout.batchSize; 0 = one call over all
// the shards to sample) on the real engine with a random model: the samples are the same for any
// split, the context window cut included (a call asks for as many new tokens as its shortest
// prompt allows, each sample is cut to its own room); a call over several shards writes each shard
// while it still runs, and a cancelled one leaves the finished shards for the rerun, which gives
// the same table; a call reports finished samples while it runs (the native progress callback),
// never after it settles; a throwing callback rejects the call; cancel() stops a call within about
// a step.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CancelledError, createRandomModel, type EngineModel } from '../src/model/engine.js';
import type { GenerateOptions, Generation, ModelHandle } from '../src/model/types.js';
import { packageRoot } from '../src/native/addon.js';
import { DEMO_DIR } from '../src/pipeline/demo.js';
import { runRollout, type RolloutOptions, type RolloutRow, readRollout } from '../src/stages/rollout.js';
import { engineSource } from '../src/stages/responseSource.js';
import { TextCodec } from '../src/text/codec.js';
import type { PipelineEvent } from '../src/util/events.js';
import { seededRandom } from './sppo.seed.js';

const root = mkdtempSync(join(tmpdir(), 'sppo-rollout-calls-'));
const { seed: testSeed, rand } = seededRandom('rollout.calls');
const demoConfig = JSON.parse(readFileSync(join(packageRoot, 'data', 'demo', 'model-config.json'), 'utf8')) as Record<string, unknown>;

/** The demo codec with more stop tokens, so that samples stop at EOS at different steps. */
function codecWithEos(count: number): TextCodec {
  const codec = TextCodec.load(DEMO_DIR);
  const eos = new Set(codec.eosIds);
  while (eos.size < codec.eosIds.length + count) eos.add(3 + Math.floor(rand() * 120));
  return Object.assign(Object.create(codec) as TextCodec, { eosIds: [...eos] });
}

/** `model` with its generate calls' options recorded, and whether the call in flight has settled. */
function spyOn(model: EngineModel): { handle: ModelHandle; calls: { prompts: number; opts: GenerateOptions }[]; inFlight: () => boolean } {
  const calls: { prompts: number; opts: GenerateOptions }[] = [];
  let flying = false;
  const handle = Object.assign(Object.create(model) as ModelHandle, {
    generateEach: async (p: number[][], s: number[], o: GenerateOptions, each: (i: number, g: Generation[]) => void) => {
      calls.push({ prompts: p.length, opts: o });
      flying = true;
      try {
        return await model.generateEach(p, s, o, each);
      } finally {
        flying = false;
      }
    },
  });
  return { handle, calls, inFlight: () => flying };
}

async function rollout(
  name: string, handle: ModelHandle, codec: TextCodec, prompts: string[], opts: RolloutOptions, onEvent?: (e: PipelineEvent) => void,
): Promise<RolloutRow[]> {
  const dir = join(root, name);
  await runRollout({ source: async () => engineSource(handle, codec), codec, prompts, dir, output: join(dir, 'g.parquet'), iteration: 1, opts, ...(onEvent ? { onEvent } : {}) });
  return (await readRollout(join(dir, 'g.parquet'))).rows;
}

describe('rollout calls', () => {
  it('gives the same samples for one prompt per call, three, and one call per shard, with the context window cutting samples', async () => {
    const window = 48;
    const model = await createRandomModel({ ...demoConfig, max_position_embeddings: window }, 1 + (testSeed % 1000), { std: 0.5 });
    try {
      const codec = codecWithEos(6);
      // Prompts from a few tokens to the cut (40): the window leaves 8 to ~40 new tokens.
      const prompts = Array.from({ length: 7 }, (_, i) => `describe ${'a big dog '.repeat(i * 2)}star ${i}`);
      const lengths = prompts.map((p) => codec.encodePrompt(p, 40).length);
      console.log(`[rollout.calls] seed ${testSeed}: prompt lengths ${lengths.join(', ')} in a window of ${window}`);
      expect(Math.max(...lengths)).toBeGreaterThan(window - 24); // the window binds for the longest
      const spy = spyOn(model);
      const opts = (batchSize: number, shardSize: number): RolloutOptions => ({ k: 3, temperature: 1, topP: 1, maxNewTokens: 24, batchSize, shardSize, maxPromptTokens: 40, seed: testSeed % 1_000_000 });
      const one = await rollout('one', spy.handle, codec, prompts, opts(1, 7));
      expect(spy.calls.map((c) => c.prompts)).toEqual([1, 1, 1, 1, 1, 1, 1]);
      // One prompt per call: each asks for what its own prompt leaves.
      expect(spy.calls.map((c) => c.opts.maxNewTokens)).toEqual(lengths.map((p) => Math.min(24, window - p)));
      spy.calls.length = 0;
      const logs: string[] = [];
      const whole = await rollout('whole', spy.handle, codec, prompts, opts(0, 7), (e) => { if (e.type === 'log') logs.push(e.message); });
      expect(spy.calls.map((c) => c.prompts)).toEqual([7]);
      // The run log gets what the scheduler did in the call: the 21 samples fit the automatic
      // budgets at once, in a pool that holds every prompt's worst case (so no swap space).
      const call = logs.filter((m) => m.startsWith('rollout: engine call'));
      console.log(`[rollout.calls] ${call[0]}`);
      expect(call).toHaveLength(1);
      expect(call[0]).toMatch(/^rollout: engine call over 7 prompts x 3: \d+ steps, up to 21 of 2048 samples at once; KV pool \d+ blocks of 16 \(peak \d+\); each prompt's worst case reserved \(no swap space\)$/);
      expect(spy.calls[0]!.opts.maxNewTokens).toBe(Math.min(24, window - Math.min(...lengths)));
      spy.calls.length = 0;
      const three = await rollout('three', spy.handle, codec, prompts, opts(3, 7));
      expect(spy.calls.map((c) => c.prompts)).toEqual([3, 3, 1]);
      spy.calls.length = 0;
      const shards = await rollout('shards', spy.handle, codec, prompts, opts(0, 4));
      expect(spy.calls.map((c) => c.prompts)).toEqual([7]); // one call over both shards
      for (const other of [whole, three, shards]) {
        expect(other.map((r) => r.responseTokens)).toEqual(one.map((r) => r.responseTokens));
        expect(other.map((r) => r.responses)).toEqual(one.map((r) => r.responses));
        expect(other.map((r) => r.finishReasons)).toEqual(one.map((r) => r.finishReasons));
      }
      // Each sample stops at its EOS, at maxNewTokens or where its prompt fills the window; some are cut there.
      let cut = 0;
      let eos = 0;
      one.forEach((r, i) => r.responseTokens.forEach((t, k) => {
        const room = Math.min(24, window - lengths[i]!);
        expect(t.length).toBeLessThanOrEqual(room);
        if (r.finishReasons[k] === 'length') expect(t.length).toBe(room);
        if (r.finishReasons[k] === 'length' && room < 24) cut++;
        if (r.finishReasons[k] === 'eos') eos++;
      }));
      console.log(`[rollout.calls] ${cut} samples cut at the window, ${eos} stopped at EOS, of ${one.length * 3}`);
      expect(cut).toBeGreaterThan(0);
    } finally {
      model.free();
    }
  });

  it('a call over several shards writes each as it finishes; cancelled, it leaves them for the rerun, which gives the same table', async () => {
    // Steps of a few milliseconds (as the cancel test below), so that the call is still running
    // when the JS thread sees the second shard on disk.
    const model = await createRandomModel({ ...demoConfig, hidden_size: 256, intermediate_size: 512, num_hidden_layers: 4 }, 11, { std: 0.5 });
    try {
      const codec = codecWithEos(3);
      const spy = spyOn(model);
      const prompts = Array.from({ length: 12 }, (_, i) => `tell me ${'more '.repeat(i % 5)}about ${i}`);
      // One prompt's samples at a time, so the four shards finish one after another inside the call.
      const opts = (batchSize: number): RolloutOptions => ({ k: 2, temperature: 1, topP: 1, maxNewTokens: 40, batchSize, shardSize: 3, maxPromptTokens: 32, seed: testSeed % 1_000_000, maxRunningSequences: 2 });
      const ref = await rollout('per-shard', spy.handle, codec, prompts, opts(3));
      expect(spy.calls.map((c) => c.prompts)).toEqual([3, 3, 3, 3]);
      spy.calls.length = 0;
      const dir = join(root, 'spanning');
      const shardFiles = (): number => (existsSync(join(dir, 'rollout')) ? readdirSync(join(dir, 'rollout')).filter((f) => /^shard-\d+\.parquet$/.test(f)).length : 0);
      const seenInFlight: number[] = [];
      const stage = (onEvent: (e: PipelineEvent) => void) => runRollout({ source: async () => engineSource(spy.handle, codec), codec, prompts, dir, output: join(dir, 'g.parquet'), iteration: 1, opts: opts(0), onEvent });
      // The first run is cancelled once two shards are on disk, while the call still runs.
      await expect(stage((e) => {
        if (e.type !== 'progress' || !spy.inFlight()) return;
        seenInFlight.push(shardFiles());
        if (shardFiles() >= 2) model.cancel();
      })).rejects.toBeInstanceOf(CancelledError);
      expect(spy.calls.map((c) => c.prompts)).toEqual([12]);
      const left = shardFiles();
      console.log(`[rollout.calls] shards on disk during the spanning call: ${seenInFlight.join(', ')}; ${left} of 4 after the cancel`);
      expect(left).toBeGreaterThanOrEqual(2);
      expect(left).toBeLessThan(4);
      expect(existsSync(join(dir, 'g.parquet'))).toBe(false);
      // The rerun samples only the missing shards, in one call, and the table is the per-shard one.
      spy.calls.length = 0;
      await stage(() => {});
      expect(spy.calls.map((c) => c.prompts)).toEqual([3 * (4 - left)]);
      const rows = (await readRollout(join(dir, 'g.parquet'))).rows;
      expect(rows.map((r) => r.promptIndex)).toEqual(prompts.map((_, i) => i));
      expect(rows.map((r) => r.responseTokens)).toEqual(ref.map((r) => r.responseTokens));
      expect(rows.map((r) => r.finishReasons)).toEqual(ref.map((r) => r.finishReasons));
      expect(rows.map((r) => r.responses)).toEqual(ref.map((r) => r.responses));
    } finally {
      model.free();
    }
  });

  it('a whole-shard call moves the progress while it runs, and settles after its last report', async () => {
    const model = await createRandomModel(demoConfig, 7, { std: 0.5 });
    try {
      const codec = TextCodec.load(DEMO_DIR);
      const spy = spyOn(model);
      const prompts = Array.from({ length: 8 }, (_, i) => `describe a ${'big '.repeat(i)}bird`);
      const during: number[] = [];
      const all: number[] = [];
      // One prompt's samples at a time: they finish in eight waves inside the one call.
      await rollout('progress', spy.handle, codec, prompts, { k: 3, temperature: 1, topP: 1, maxNewTokens: 12, batchSize: 0, shardSize: 8, maxPromptTokens: 32, seed: 5, maxRunningSequences: 3 }, (e) => {
        if (e.type !== 'progress') return;
        all.push(e.done);
        if (spy.inFlight()) during.push(e.done);
      });
      expect(spy.calls.map((c) => c.prompts)).toEqual([8]);
      console.log(`[rollout.calls] progress during the call: ${during.join(', ')}`);
      expect(during.filter((d) => d > 0 && d < 24).length).toBeGreaterThan(1);
      for (let i = 1; i < all.length; i++) expect(all[i]!).toBeGreaterThanOrEqual(all[i - 1]!);
      expect(all[all.length - 1]).toBe(24);

      // The engine's own callback: rising counts ending at all of them, nothing after the promise settles.
      const counts: number[] = [];
      const opts = { maxNewTokens: 10, temperature: 1, topP: 1, eosTokenIds: [2, 7, 11, 13, 17], samples: 3, maxRunningSequences: 3 };
      const ps = prompts.map((p) => codec.encodePrompt(p, 32));
      const gens = await model.generate(ps, ps.map((_, i) => i), { ...opts, onProgress: (n) => counts.push(n) });
      const atSettle = counts.length;
      await new Promise((r) => setTimeout(r, 50));
      expect(counts.length).toBe(atSettle);
      expect(counts.length).toBeGreaterThan(1);
      for (let i = 1; i < counts.length; i++) expect(counts[i]!).toBeGreaterThan(counts[i - 1]!);
      expect(counts[counts.length - 1]).toBe(gens.length);
      // Reporting changes nothing.
      expect(await model.generate(ps, ps.map((_, i) => i), opts)).toEqual(gens);
    } finally {
      model.free();
    }
  });

  it('a throwing progress callback rejects the call with its error, and the model stays usable', async () => {
    const model = await createRandomModel(demoConfig, 9);
    try {
      const opts = { maxNewTokens: 200, temperature: 1, topP: 1, eosTokenIds: [] as number[], samples: 2, maxRunningSequences: 2 };
      const prompts = Array.from({ length: 6 }, (_, i) => [1, 5 + i, 9]);
      let calls = 0;
      const t0 = Date.now();
      await expect(model.generate(prompts, prompts.map((_, i) => i), {
        ...opts, onProgress: () => { calls++; throw new Error('the progress bar broke'); },
      })).rejects.toThrow('the progress bar broke');
      console.log(`[rollout.calls] a throwing callback: ${calls} call(s), rejected after ${Date.now() - t0} ms`);
      expect(calls).toBe(1); // later reports are dropped
      await expect(model.generate(prompts, prompts.map((_, i) => i), { ...opts, onProgress: 5 as unknown as () => void })).rejects.toThrow(/onProgress must be a function/);
      expect(await model.generate(prompts.slice(0, 1), [0], { ...opts, maxNewTokens: 3 })).toHaveLength(2);
    } finally {
      model.free();
    }
  });

  it('cancel() stops a whole-shard rollout call within about a step', async () => {
    // As test/model.cancel.test.ts: wide and deep enough that a step takes a few milliseconds.
    const model = await createRandomModel({ ...demoConfig, hidden_size: 256, intermediate_size: 512, num_hidden_layers: 4, max_position_embeddings: 16384 }, 3);
    try {
      const codec = TextCodec.load(DEMO_DIR);
      const spy = spyOn(model);
      const prompts = Array.from({ length: 8 }, (_, i) => `say something ${i}`);
      const run = rollout('cancel', spy.handle, codec, prompts, { k: 8, temperature: 1, topP: 1, maxNewTokens: 8000, batchSize: 0, shardSize: 8, maxPromptTokens: 32, seed: 1 });
      await new Promise((r) => setTimeout(r, 300));
      expect(spy.inFlight()).toBe(true);
      const t1 = Date.now();
      model.cancel();
      await expect(run).rejects.toBeInstanceOf(CancelledError);
      const ms = Date.now() - t1;
      console.log(`[rollout.calls] whole-shard call stopped ${ms} ms after cancel()`);
      expect(spy.calls.map((c) => c.prompts)).toEqual([8]);
      expect(ms).toBeLessThan(1000);
    } finally {
      model.free();
    }
  });
});
