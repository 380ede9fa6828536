// A run folder is self-contained: its records name files relative to it, so a copy (`cp -r`) or a
// move (`mv`) of an unfinished run resumes from its own files and ends as an uninterrupted run,
// and a record that would load from outside the folder is refused with the path (issue 12, item 1).
import { describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { train } from '../src/pipeline/pipeline.js';
import type { Recipe } from '../src/recipe/types.js';
import { DEMO_DIR } from '../src/pipeline/demo.js';
import { fakeRunRecipe, fakeWeights } from './helpers/fakeRun.js';
import { fakeProvider } from './helpers/fakeModel.js';
import { seededRandom } from './sppo.seed.js';

const root = mkdtempSync(join(tmpdir(), 'sppo-portable-'));
const { seed } = seededRandom('pipeline.portable');
const recipe = (name: string, patch?: (r: Recipe) => void): Recipe =>
  fakeRunRecipe({ root, promptFile: join(DEMO_DIR, 'prompts.jsonl'), maxPrompts: 8, seed }, name, patch);
const json = (f: string): Record<string, unknown> => JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;

// 8 pairs a iteration, global batch 4, 2 epochs: 4 steps of 2 micro-batches = 8 accumulate calls,
// so the 9th is iteration 2's first: the run fails there with iteration 1 finished.
const failInIteration2 = (): ReturnType<typeof fakeProvider> => fakeProvider({ nanAtAccumulate: 9 });

// The uninterrupted run every resumed one must end as.
let refRun: Promise<string> | undefined;
const reference = (): Promise<string> =>
  (refRun ??= (async () => {
    const ref = recipe('reference');
    await train(ref, { provider: fakeProvider() });
    return join(ref.output, 'iter-2', 'checkpoint-epoch-1');
  })());

describe('a copied or moved run folder', () => {
  it('records paths relative to the run folder', async () => {
    const r = recipe('relative');
    const res = await train(r, { provider: fakeProvider() });
    expect(json(join(r.output, 'iter-1', 'summary.json')).policy).toBe('iter-1/checkpoint-epoch-1');
    const top = json(join(r.output, 'summary.json'));
    expect(top).toMatchObject({ output: '.', baseModel: 'base-model', finalModel: 'iter-2/checkpoint-epoch-1' });
    // The API still returns absolute paths.
    expect(res.finalModel).toBe(join(r.output, 'iter-2', 'checkpoint-epoch-1'));
    expect(res.iterations[0]!.policy).toBe(join(r.output, 'iter-1', 'checkpoint-epoch-1'));
  });

  it('a copy resumes from its own checkpoint, not the original folder\'s (which has changed since)', async () => {
    const orig = recipe('copy-orig');
    await expect(train(orig, { provider: failInIteration2() })).rejects.toThrow(/the loss is NaN/);
    const copy = recipe('copy-dest');
    cpSync(orig.output, copy.output, { recursive: true });
    // The original's iteration-1 checkpoint changes after the copy was made.
    const ck = join(orig.output, 'iter-1', 'checkpoint-epoch-1', 'weights.json');
    writeFileSync(ck, JSON.stringify(fakeWeights(join(orig.output, 'iter-1', 'checkpoint-epoch-1')).map((w) => w + 1)));
    const res = await train(copy, { provider: fakeProvider() });
    expect(res.finalModel).toBe(join(copy.output, 'iter-2', 'checkpoint-epoch-1'));
    expect(fakeWeights(res.finalModel)).toEqual(fakeWeights(await reference()));
  });

  it('a moved run resumes where it stopped', async () => {
    const orig = recipe('move-orig');
    await expect(train(orig, { provider: failInIteration2() })).rejects.toThrow(/the loss is NaN/);
    const moved = recipe('move-dest');
    renameSync(orig.output, moved.output);
    const res = await train(moved, { provider: fakeProvider() });
    expect(fakeWeights(res.finalModel)).toEqual(fakeWeights(await reference()));
  });

  it('an older record with an absolute path of another folder is read as this folder\'s checkpoint; any other outside path is refused', async () => {
    const old = recipe('old-record');
    await expect(train(old, { provider: failInIteration2() })).rejects.toThrow(/the loss is NaN/);
    const s1 = join(old.output, 'iter-1', 'summary.json');
    // What an older version wrote: the absolute path, here of a folder it was copied from.
    writeFileSync(s1, JSON.stringify({ ...json(s1), policy: '/somewhere/else/run/iter-1/checkpoint-epoch-1' }));
    const logs: string[] = [];
    const res = await train(old, { provider: fakeProvider(), onEvent: (e) => { if (e.type === 'log') logs.push(e.message); } });
    expect(logs.join('\n')).toMatch(/an older record, from where the run folder was\); using this folder's iter-1\/checkpoint-epoch-1/);
    expect(fakeWeights(res.finalModel)).toEqual(fakeWeights(await reference()));

    const bad = recipe('outside');
    await expect(train(bad, { provider: failInIteration2() })).rejects.toThrow(/the loss is NaN/);
    const b1 = join(bad.output, 'iter-1', 'summary.json');
    writeFileSync(b1, JSON.stringify({ ...json(b1), policy: '../reference/iter-1/checkpoint-epoch-1' }));
    await expect(train(bad, { provider: fakeProvider() })).rejects.toThrow(
      /iter-1\/summary.json: policy names \.\.\/reference\/iter-1\/checkpoint-epoch-1, which is outside the run folder/,
    );
  });
});
