// A judge is found broken before the rollout, not after it, and a slow or hung judge is never
// silent (issue 12, item 5): a command judge is started and handshaken before the first rollout;
// the answer timeout is a recipe key (judgeTimeout, --judge-timeout); lines are printed while
// waiting for a handshake or an answer.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { train } from '../src/pipeline/pipeline.js';
import type { Recipe } from '../src/recipe/types.js';
import { DEMO_DIR } from '../src/pipeline/demo.js';
import { recipeFields } from '../src/recipe/fields.js';
import { fakeRunRecipe } from './helpers/fakeRun.js';
import { fakeProvider } from './helpers/fakeModel.js';
import { seededRandom } from './sppo.seed.js';

const root = mkdtempSync(join(tmpdir(), 'sppo-judge-early-'));
const { seed } = seededRandom('pipeline.judgeEarly');
const recipe = (name: string, patch?: (r: Recipe) => void): Recipe =>
  fakeRunRecipe({ root, promptFile: join(DEMO_DIR, 'prompts.jsonl'), maxPrompts: 4, seed }, name, (r) => {
    r.iterations = 1;
    patch?.(r);
  });

/** A command judge: waits `handshakeMs`, handshakes, then answers each request after `answerMs` (never when null). */
function judge(name: string, handshakeMs: number, answerMs: number | null): string {
  const file = join(root, `${name}.mjs`);
  writeFileSync(file, `import { createInterface } from 'node:readline';
setTimeout(() => {
  console.log(JSON.stringify({ protocol: 'sppo-judge', version: 1 }));
  const rl = createInterface({ input: process.stdin });
  rl.on('close', () => process.exit(0)); // the end of stdin: done, as the protocol asks
  rl.on('line', (line) => {
    const req = JSON.parse(line);
    if (${answerMs} === null) return;
    setTimeout(() => console.log(JSON.stringify({ id: req.id, scores: req.responses.map((r) => r.length) })), ${answerMs ?? 0});
  });
}, ${handshakeMs});
setInterval(() => {}, 1000);
`);
  return `command:node ${file}`;
}

const logsOf = (lines: string[]) => (e: { type: string; message?: string }): void => {
  if (e.type === 'log' || e.type === 'warning') lines.push(e.message!);
};

describe('the judge before the rollout', () => {
  it('a command judge that cannot start fails the run before any sampling', async () => {
    const provider = fakeProvider();
    const r = recipe('nonexistent', (x) => { x.judge = 'command:/nonexistent/judge'; });
    await expect(train(r, { provider })).rejects.toThrow(/judge 'command:\/nonexistent\/judge' exited with code 127 before its handshake line/);
    expect(provider.hooks.calls!.generate).toBe(0);
  });

  it('a judge that handshakes is started again to judge, and the run completes', async () => {
    const lines: string[] = [];
    const r = recipe('good', (x) => { x.judge = judge('good', 0, 0); });
    const res = await train(r, { provider: fakeProvider(), onEvent: logsOf(lines) });
    expect(res.iterations).toHaveLength(1);
    expect(lines.join('\n')).toMatch(/judge 'command:node .*good.mjs' started and handshook in [\d.]+ s \(a check before the rollout/);
  });

  it('a slow handshake prints a line while it is awaited', async () => {
    const lines: string[] = [];
    const r = recipe('slow-start', (x) => { x.judge = judge('slow-start', 700, 0); });
    await train(r, { provider: fakeProvider(), onEvent: logsOf(lines), judgeWaitNoticeMs: 200 });
    expect(lines.join('\n')).toMatch(/waiting for the handshake of judge 'command:node .*slow-start.mjs' for [\d.]+s; it is stopped after 600 s \(--judge-startup-timeout\)/);
  });
});

describe('a slow or hung judge', () => {
  it('judgeTimeout (--judge-timeout) is a recipe key, 600 s by default', () => {
    const f = recipeFields.find((x) => x.path === 'judgeTimeout')!;
    expect(f).toMatchObject({ flag: 'judge-timeout', default: 600 });
    expect(recipeFields.find((x) => x.path === 'judgeStartupTimeout')).toMatchObject({ flag: 'judge-startup-timeout', default: 600 });
  });

  it('a judge silent for judgeTimeout seconds fails the run then, with lines while it waited', async () => {
    const lines: string[] = [];
    const r = recipe('hung', (x) => {
      x.judge = judge('hung', 0, null);
      x.judgeTimeout = 1.5;
    });
    const t0 = Date.now();
    await expect(train(r, { provider: fakeProvider(), onEvent: logsOf(lines), judgeWaitNoticeMs: 400 })).rejects.toThrow(/timed out: printed nothing for 1.5 s while we waited for an answer/);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(lines.join('\n')).toMatch(/iteration 1 judge: waiting on judge 'command:node .*hung.mjs' for [\d.]+s \(prompts 0\.\.3\); it is stopped after 1.5 s of silence \(--judge-timeout\)/);
    expect(readFileSync(join(r.output, 'log.txt'), 'utf8')).toMatch(/waiting on judge/);
  });

  it('a slow judge that answers is waited for, with lines meanwhile', async () => {
    const lines: string[] = [];
    const r = recipe('slow', (x) => { x.judge = judge('slow', 0, 900); });
    const res = await train(r, { provider: fakeProvider(), onEvent: logsOf(lines), judgeWaitNoticeMs: 250 });
    expect(res.iterations).toHaveLength(1);
    expect(lines.filter((l) => /waiting on judge/.test(l)).length).toBeGreaterThanOrEqual(1);
  });
});
