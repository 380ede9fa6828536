// The recorded recipe says what the work used; a refused rerun writes nothing (issue 12, item 8).
// (A flag given twice is refused by the CLI: test/cli.userFacing.test.ts.)
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { train } from '../src/pipeline/pipeline.js';
import type { Recipe } from '../src/recipe/types.js';
import { DEMO_DIR } from '../src/pipeline/demo.js';
import { fakeRunRecipe } from './helpers/fakeRun.js';
import { fakeProvider } from './helpers/fakeModel.js';
import { seededRandom } from './sppo.seed.js';

const root = mkdtempSync(join(tmpdir(), 'sppo-record-'));
const { seed } = seededRandom('pipeline.record');
const recipe = (name: string, patch?: (r: Recipe) => void): Recipe =>
  fakeRunRecipe({ root, promptFile: join(DEMO_DIR, 'prompts.jsonl'), maxPrompts: 6, seed }, name, patch);
const record = (r: Recipe): string => readFileSync(join(r.output, 'recipe.resolved.yaml'), 'utf8');

describe('recipe.resolved.yaml', () => {
  it('a finished run keeps its record: a different judge is refused, unused settings are not recorded', async () => {
    const r = recipe('finished');
    await train(r, { provider: fakeProvider() });
    const before = record(r);
    await expect(train({ ...r, judge: 'builtin:length' }, { provider: fakeProvider() })).rejects.toThrow(
      /was started with a different recipe: judge \(was "builtin:demo", now "builtin:length"\)/,
    );
    expect(record(r)).toBe(before);
    const logs: string[] = [];
    await train({ ...r, train: { ...r.train, lr: 0.5 } }, { provider: fakeProvider(), onEvent: (e) => { if (e.type === 'log') logs.push(e.message); } });
    expect(logs.join('\n')).toMatch(/has finished its 2 iteration\(s\): nothing to do; the changed setting\(s\) train.lr were not used and are not recorded/);
    expect(record(r)).toBe(before);
  });

  it('a refused --iterations writes nothing', async () => {
    const r = recipe('more-iterations');
    await train(r, { provider: fakeProvider() });
    const before = record(r);
    await expect(train({ ...r, iterations: 4 }, { provider: fakeProvider() })).rejects.toThrow(/can run at most 2 iteration\(s\); iterations is now 4/);
    expect(record(r)).toBe(before);
  });

  it('a judge replaced while unused (the first one failed) is recorded, once it has started', async () => {
    const r = recipe('replaced', (x) => { x.judge = 'command:/nonexistent/judge'; });
    await expect(train(r, { provider: fakeProvider({ nanAtAccumulate: 1 }) })).rejects.toThrow(/before its handshake line/);
    // Failing before any rollout: nothing depends on the recipe yet.
    await expect(train({ ...r, judge: 'builtin:demo' }, { provider: fakeProvider({ nanAtAccumulate: 1 }) })).rejects.toThrow(/the loss is NaN/);
    expect(record(r)).toMatch(/judge: builtin:demo/);
    // The rollout exists and the judge has judged: it may not change now.
    await expect(train({ ...r, judge: 'builtin:length' }, { provider: fakeProvider() })).rejects.toThrow(/different recipe: judge/);
    expect(record(r)).toMatch(/judge: builtin:demo/);
  });
});
