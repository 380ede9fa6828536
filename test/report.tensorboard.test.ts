// TensorBoard event files: the framing and messages read back by an independent decoder
// (test/helpers/tfeventsReader.ts: protobufjs over TensorBoard's field definitions, a bitwise
// CRC-32C), torn tails and redone steps on reopen, the scalars of a whole run on the fake model
// (global steps across iterations, loss x beta^2, per-iteration win rate and stage times), a run
// resumed after a crash ending with one event per step, and TensorBoard itself when a Python with
// the tensorboard package is at hand.
import { describe, expect, it } from 'vitest';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventFileWriter } from '../src/report/eventFile.js';
import { maskedCrc32c } from '../src/report/tfrecord.js';
import { train } from '../src/pipeline/pipeline.js';
import { DEMO_DIR } from '../src/pipeline/demo.js';
import { readEventFile, scalarsByTag } from './helpers/tfeventsReader.js';
import { fakeRunRecipe } from './helpers/fakeRun.js';
import { fakeProvider } from './helpers/fakeModel.js';
import { seededRandom } from './sppo.seed.js';

const root = mkdtempSync(join(tmpdir(), 'sppo-tb-'));
const { seed: testSeed, rand } = seededRandom('report.tensorboard');
const eventFileIn = (dir: string): string => {
  const f = readdirSync(dir).filter((n) => n.includes('tfevents'));
  expect(f).toHaveLength(1);
  return join(dir, f[0]!);
};

describe('TensorBoard event files', () => {
  it('frames records with masked CRC-32C (the known check value) and Event/Summary messages a protobuf decoder reads', () => {
    // CRC-32C("123456789") = 0xe3069283; masked as TensorFlow's crc32c::Mask.
    const c = 0xe3069283;
    expect(maskedCrc32c(Buffer.from('123456789'))).toBe((((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0);
    const dir = join(root, 'unit');
    const w = EventFileWriter.open(dir);
    const values: [string, number][] = Array.from({ length: 1 + Math.floor(rand() * 6) }, (_, i) => [`train/x${i}`, (rand() - 0.5) * 10 ** Math.floor(rand() * 12 - 6)]);
    w.write({ wallTime: 1700000000.25, step: 7, values });
    w.write({ wallTime: 1700000001.5, step: 300_000_000_000, values: [['iteration/win_rate', 0.625]] });
    w.close();
    const events = readEventFile(eventFileIn(dir));
    expect(events[0]).toMatchObject({ fileVersion: 'brain.Event:2', values: [] });
    expect(events[1]).toMatchObject({ wallTime: 1700000000.25, step: 7 });
    expect(events[1]!.values.map((v) => v.tag)).toEqual(values.map(([t]) => t));
    events[1]!.values.forEach((v, i) => expect(v.simpleValue).toBe(Math.fround(values[i]![1])));
    expect(events[2]).toMatchObject({ step: 300_000_000_000, values: [{ tag: 'iteration/win_rate', simpleValue: 0.625 }] });
  });

  it('cuts a torn tail on reopen, keeps equal re-writes, and replaces a redone step and what followed', () => {
    const dir = join(root, 'reopen');
    const w = EventFileWriter.open(dir);
    for (let s = 1; s <= 5; s++) w.write({ wallTime: s, step: s, values: [['train/loss', s]] });
    w.close();
    const file = eventFileIn(dir);
    const whole = statSync(file).size;
    appendFileSync(file, Buffer.from([1, 2, 3, 4, 5, 6, 7])); // a record cut by a kill
    const logs: string[] = [];
    const w2 = EventFileWriter.open(dir, (m) => logs.push(m));
    expect(statSync(file).size).toBe(whole);
    expect(logs.join('\n')).toMatch(/torn last record \(7 bytes\) cut off/);
    w2.write({ wallTime: 99, step: 2, values: [['train/loss', 2]] }); // a rerun re-reporting: no change
    expect(statSync(file).size).toBe(whole);
    w2.write({ wallTime: 99, step: 3, values: [['train/loss', 30]] }); // step 3 redone after a resume
    w2.write({ wallTime: 99, step: 4, values: [['train/loss', 40]] });
    w2.close();
    const loss = scalarsByTag(readEventFile(file)).get('train/loss');
    expect(loss).toEqual([[1, 1], [2, 2], [3, 30], [4, 40]]);
  });
});

describe('the TensorBoard file of a run', () => {
  const recipe = (name: string) =>
    fakeRunRecipe({ root, promptFile: join(DEMO_DIR, 'prompts.jsonl'), maxPrompts: 10, seed: testSeed }, name, (r) => {
      r.eval.prompts = 4;
      r.eval.samples = 2;
    });

  it('holds every step at its global step, loss x beta^2, and per iteration the win rate, its interval, pairs, ties and stage times', async () => {
    const r = recipe('run');
    const res = await train(r, { provider: fakeProvider() });
    const tags = scalarsByTag(readEventFile(eventFileIn(join(r.output, 'tb'))));
    const metrics = [1, 2].map((t) => readFileSync(join(r.output, `iter-${t}`, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>));
    const n1 = metrics[0]!.length;
    const loss = tags.get('train/loss')!;
    expect(loss.map(([s]) => s)).toEqual(Array.from({ length: n1 + metrics[1]!.length }, (_, i) => i + 1));
    expect(loss.map(([, v]) => v)).toEqual([...metrics[0]!, ...metrics[1]!].map((m) => Math.fround(m.loss!)));
    const eta = r.sppo.eta;
    const all = [...metrics[0]!, ...metrics[1]!];
    tags.get('train/loss_beta2')!.forEach(([s, v], i) => expect(v, `step ${s}`).toBe(Math.fround(all[i]!.loss! / (eta * eta))));
    for (const [tag, key] of [['train/rewards/margins', 'rewards/margins'], ['train/rewards/accuracies', 'rewards/accuracies'], ['train/learning_rate', 'lr'], ['train/grad_norm', 'grad_norm'], ['train/tokens_per_second', 'tokens/s'], ['train/logps/chosen', 'logps/chosen'], ['train/rewards/chosen', 'rewards/chosen'], ['train/rewards/rejected', 'rewards/rejected']]) {
      expect(tags.get(tag!)!.map(([, v]) => v), tag).toEqual([...metrics[0]!, ...metrics[1]!].map((m) => Math.fround(m[key!]!)));
    }
    expect(tags.get('train/iteration')!.map(([, v]) => v)).toEqual([...metrics[0]!.map(() => 1), ...metrics[1]!.map(() => 2)]);
    const wr = res.iterations.map((s) => s.winRate!);
    expect(tags.get('iteration/win_rate')).toEqual(wr.map((w, i) => [i + 1, Math.fround(w.winRate)]));
    expect(tags.get('iteration/win_rate_lower')).toEqual(wr.map((w, i) => [i + 1, Math.fround(w.lower)]));
    expect(tags.get('iteration/win_rate_upper')).toEqual(wr.map((w, i) => [i + 1, Math.fround(w.upper)]));
    expect(tags.get('iteration/ties')).toEqual(wr.map((w, i) => [i + 1, w.ties]));
    expect(tags.get('iteration/pairs')).toEqual(res.iterations.map((s, i) => [i + 1, s.pairs]));
    for (const stage of ['rollout', 'judge', 'pairs', 'reference', 'train', 'eval']) {
      const times = tags.get(`stage_seconds/${stage}`)!;
      expect(times.map(([s]) => s), stage).toEqual([1, 2]);
      for (const [, v] of times) expect(v).toBeGreaterThanOrEqual(0);
    }
  });

  it('after a crash mid-training and a resume, holds each step once, with the resumed run’s values', async () => {
    const ref = recipe('ref');
    await train(ref, { provider: fakeProvider() });
    const crashed = recipe('crashed');
    crashed.train.resumeEvery = 2;
    // The fake model's loss is NaN at accumulate call 10 (steps of 4, 4 and 2 pairs in micro-batches of 2: 2, 2, 1 calls): iteration
    // 1 stops in step 6 with steps 1-5 written and a resume state at step 4, so step 5 is redone.
    await expect(train(crashed, { provider: fakeProvider({ nanAtAccumulate: 10 }) })).rejects.toThrow(/loss is NaN/);
    expect(scalarsByTag(readEventFile(eventFileIn(join(crashed.output, 'tb')))).get('train/loss')!.map(([s]) => s)).toEqual([1, 2, 3, 4, 5]);
    await train(crashed, { provider: fakeProvider() });
    const a = scalarsByTag(readEventFile(eventFileIn(join(ref.output, 'tb'))));
    const b = scalarsByTag(readEventFile(eventFileIn(join(crashed.output, 'tb'))));
    for (const tag of ['train/loss', 'train/rewards/margins', 'train/grad_norm', 'iteration/win_rate', 'iteration/pairs']) expect(b.get(tag), tag).toEqual(a.get(tag));
  });

  it('a torn tail from a kill is cut when the run resumes, and the file stays readable', async () => {
    const r = recipe('torn');
    r.promptSplit = 'reuse';
    await train(r, { provider: fakeProvider() });
    const file = eventFileIn(join(r.output, 'tb'));
    const before = readEventFile(file).length;
    truncateSync(file, statSync(file).size - 3);
    r.iterations = 3;
    await train(r, { provider: fakeProvider() });
    const events = readEventFile(file);
    expect(events.length).toBeGreaterThan(before);
    expect(scalarsByTag(events).get('iteration/pairs')!.map(([s]) => s)).toEqual([1, 2, 3]);
  });
});

// TensorBoard's own reader (its EventAccumulator), when a Python with the tensorboard package is
// at hand: SPPO_TENSORBOARD_PYTHON, or python3. Debian has no TensorBoard package and CI reaches
// no PyPI, so CI usually skips this; the independent decoder above runs everywhere.
const python = process.env.SPPO_TENSORBOARD_PYTHON ?? 'python3';
const haveTensorBoard = spawnSync(python, ['-c', 'import tensorboard'], { encoding: 'utf8' }).status === 0;
describe.skipIf(!haveTensorBoard)(`TensorBoard's own reader${haveTensorBoard ? ` (${python})` : ` (skipped: ${python} cannot import tensorboard; set SPPO_TENSORBOARD_PYTHON to a Python that can)`}`, () => {
  it('reads the run: tags, steps and values', async () => {
    const dir = join(root, 'run', 'tb');
    if (!existsSync(dir)) await train(recipe('run'), { provider: fakeProvider() });
    const script = join(root, 'tb.py');
    writeFileSync(script, [
      'import json, sys',
      'from tensorboard.backend.event_processing import event_accumulator as ea',
      'acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0})',
      'acc.Reload()',
      'print(json.dumps({t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}))',
    ].join('\n'));
    const out = spawnSync(python, [script, dir], { encoding: 'utf8' });
    expect(out.status, out.stderr).toBe(0);
    const theirs = JSON.parse(out.stdout.trim().split('\n').pop()!) as Record<string, [number, number][]>;
    const ours = scalarsByTag(readEventFile(eventFileIn(dir)));
    expect(Object.keys(theirs).sort()).toEqual([...ours.keys()].sort());
    for (const [tag, pts] of ours) expect(theirs[tag], tag).toEqual(pts);
  });
});

function recipe(name: string) {
  return fakeRunRecipe({ root, promptFile: join(DEMO_DIR, 'prompts.jsonl'), maxPrompts: 10, seed: testSeed }, name, (r) => {
    r.eval.prompts = 4;
    r.eval.samples = 2;
  });
}
