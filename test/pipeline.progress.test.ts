// Progress where no terminal is (issue 12, item 4): periodic progress lines with done/total, rate
// and ETA, a line per optimizer step, progress of every stage (rollout, judge, reference log-probs,
// training, eval), and the same lines in the run folder's log.txt.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { train } from '../src/pipeline/pipeline.js';
import { generate } from '../src/api.js';
import type { Recipe } from '../src/recipe/types.js';
import { DEMO_DIR } from '../src/pipeline/demo.js';
import type { PipelineEvent } from '../src/util/events.js';
import { EventLines } from '../src/util/eventLines.js';
import { printEvents } from '../src/util/printEvents.js';
import { progressEveryMs } from '../src/util/progress.js';
import { fakeRunRecipe } from './helpers/fakeRun.js';
import { fakeProvider } from './helpers/fakeModel.js';
import { seededRandom } from './sppo.seed.js';

const root = mkdtempSync(join(tmpdir(), 'sppo-progress-'));
const { seed } = seededRandom('pipeline.progress');
const recipe = (name: string, patch?: (r: Recipe) => void): Recipe =>
  fakeRunRecipe({ root, promptFile: join(DEMO_DIR, 'prompts.jsonl'), maxPrompts: 8, seed }, name, patch);

const progress = (done: number, total: number): PipelineEvent => ({ type: 'progress', iteration: 1, stage: 'rollout', done, total, unit: 'samples' });

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString()));
  return { stream, text: () => text };
}

describe('progress lines', () => {
  it('one line per interval per stage with done/total, rate and ETA, and the last one', () => {
    let now = 0;
    const lines = new EventLines(10_000, () => now);
    expect(lines.lines(progress(100, 1000))).toEqual([]); // the start: 100 done before (a resume)
    now = 5_000;
    expect(lines.lines(progress(200, 1000))).toEqual([]); // within the interval
    now = 10_000;
    expect(lines.lines(progress(300, 1000))).toEqual(['iteration 1 rollout: 300/1000 samples (30%), 20.0 samples/s, elapsed 10s, ETA 35s']);
    now = 12_000;
    expect(lines.lines(progress(400, 1000))).toEqual([]);
    now = 60_000;
    expect(lines.lines(progress(1000, 1000))).toEqual(['iteration 1 rollout: 1000/1000 samples done in 1m 00s (15.0 samples/s)']);
  });

  it('a line per optimizer step with loss, loss·β², reward margin, lr, grad norm and tokens/s', () => {
    const lines = new EventLines(0);
    const step: PipelineEvent = {
      type: 'step', iteration: 2, totalSteps: 7, beta: 0.1,
      metrics: { step: 3, loss: 12.5, 'rewards/margins': 0.25, lr: 5e-7, grad_norm: 0.75, 'tokens/s': 1234.4 },
    };
    expect(lines.lines(step)).toEqual(['iteration 2 step 3/7: loss 12.50, loss·β² 0.1250, margin 0.2500, lr 5.000e-7, grad norm 0.7500, 1234 tokens/s']);
  });

  it('printEvents writes progress lines when stderr is not a terminal, a bar when it is', () => {
    const out = capture();
    const err = capture();
    let now = 0;
    const sink = printEvents(out.stream, err.stream, { tty: false, progress: true, everyMs: 1000, clock: () => now });
    sink(progress(0, 10));
    now = 2000;
    sink(progress(5, 10));
    now = 2500;
    sink(progress(10, 10));
    expect(err.text()).toBe('iteration 1 rollout: 5/10 samples (50%), 2.50 samples/s, elapsed 2.0s, ETA 2.0s\niteration 1 rollout: 10/10 samples done in 2.5s (4.00 samples/s)\n');
    const tty = capture();
    const bar = printEvents(out.stream, tty.stream, { tty: true, progress: true, clock: () => now });
    bar(progress(0, 10));
    now = 3000;
    bar(progress(10, 10));
    expect(tty.text()).toMatch(/^\riteration 1 rollout \[\.+\] 0\/10 samples 0.0s eta \?\x1b\[K\riteration 1 rollout \[#+\] 10\/10 samples 0.5s\x1b\[K\n$/);
    expect(out.text()).toBe('');
  });

  it('SPPO_PROGRESS_EVERY sets the interval (seconds; default 30)', () => {
    expect(progressEveryMs({})).toBe(30_000);
    expect(progressEveryMs({ SPPO_PROGRESS_EVERY: '5' })).toBe(5000);
    expect(progressEveryMs({ SPPO_PROGRESS_EVERY: '0' })).toBe(0);
    expect(progressEveryMs({ SPPO_PROGRESS_EVERY: 'soon' })).toBe(30_000);
  });
});

describe('progress of a long generate call', () => {
  it('is re-sent while the call runs, so that a log shows the time going by before it returns', async () => {
    const provider = fakeProvider({ generateDelayMs: 1200 });
    const model = join(root, 'slow-model');
    const m = await provider.createRandom(JSON.parse(readFileSync(join(DEMO_DIR, 'model-config.json'), 'utf8')) as Record<string, unknown>, 1, 'cpu');
    await m.save(model, { tokenizerFrom: DEMO_DIR });
    const events: PipelineEvent[] = [];
    const old = process.env.SPPO_PROGRESS_EVERY;
    process.env.SPPO_PROGRESS_EVERY = '0'; // heartbeats every 200 ms
    try {
      await generate({ model, prompts: join(DEMO_DIR, 'prompts.jsonl'), maxPrompts: 2, k: 1, maxNewTokens: 3, output: join(root, 'slow-gen'), provider, onEvent: (e) => events.push(e) });
    } finally {
      if (old === undefined) delete process.env.SPPO_PROGRESS_EVERY;
      else process.env.SPPO_PROGRESS_EVERY = old;
    }
    const waiting = events.filter((e) => e.type === 'progress' && e.stage === 'generate' && e.done === 0);
    expect(waiting.length).toBeGreaterThanOrEqual(3);
    const log = readFileSync(join(root, 'slow-gen', 'log.txt'), 'utf8');
    expect(log).toMatch(/Z generate: 1 sample for each of 2 prompts/);
    expect(log).toMatch(/Z generate: 0\/2 samples \(0%\), rate unknown, elapsed [\d.]+s, ETA unknown/);
  });
});

describe('progress of a run', () => {
  it('every stage reports progress, and log.txt records the run (appended by a rerun)', async () => {
    const r = recipe('logged', (x) => { x.eval.prompts = 4; x.eval.samples = 2; });
    const events: PipelineEvent[] = [];
    await train(r, { provider: fakeProvider(), onEvent: (e) => events.push(e) });
    const stages = new Set(events.filter((e) => e.type === 'progress').map((e) => `${(e as { iteration: number }).iteration} ${(e as { stage: string }).stage}`));
    for (const t of [1, 2]) {
      for (const s of ['rollout', 'judge', 'reference', 'train', 'eval samples', 'eval judge']) expect(stages, `${t} ${s}`).toContain(`${t} ${s}`);
    }
    expect(stages).toContain('1 eval base samples');
    // Progress events end at their totals.
    const last = events.filter((e): e is Extract<PipelineEvent, { type: 'progress' }> => e.type === 'progress' && e.iteration === 1 && e.stage === 'reference').pop()!;
    expect(last).toMatchObject({ done: 8, total: 8, unit: 'pairs' });

    const log = readFileSync(join(r.output, 'log.txt'), 'utf8');
    expect(log).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z --- sppo-native train \(pid \d+\)/);
    expect(log).toMatch(/Z iteration 1 step 1\/4: loss [\d.e+-]+, loss·β² [\d.e+-]+, margin [\d.e+-]+, lr [\d.e+-]+, grad norm [\d.e+-]+, \d+ tokens\/s\n/);
    for (const s of ['rollout: 24/24 samples', 'judge: 8/8 prompts', 'reference: 8/8 pairs', 'train: 4/4 steps', 'eval samples: 8/8 samples', 'eval judge: 8/8 comparisons']) {
      expect(log).toContain(`iteration 2 ${s} done in`);
    }
    expect(log).toMatch(/iteration 2: done \(8 pairs/);
    expect(log).toMatch(/run finished \(2 iteration\(s\) run in/);
    await train(r, { provider: fakeProvider() });
    const again = readFileSync(join(r.output, 'log.txt'), 'utf8');
    expect(again.startsWith(log)).toBe(true);
    expect(again.slice(log.length)).toMatch(/iteration 2: iteration skipped/);
  });

  it('a failed run writes why into log.txt', async () => {
    const r = recipe('log-failure');
    await expect(train(r, { provider: fakeProvider({ nanAtAccumulate: 3 }) })).rejects.toThrow(/the loss is NaN/);
    expect(readFileSync(join(r.output, 'log.txt'), 'utf8')).toMatch(/Z failed: iteration 1, step 2: the loss is NaN/);
  });
});
