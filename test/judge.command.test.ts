// The command judge against real subprocesses: the shipped example, and judges that crash, print
// malformed lines, answer with the wrong size, refuse a request, or hang. Every failure must name
// the command (and the line), and no process may be left running.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createJudge } from '../src/judge/factory.js';
import { CommandJudge } from '../src/judge/command.js';
import { sigmoid } from '../src/judge/matrix.js';
import { seededRandom } from './sppo.seed.js';

let dir = '';
const HANDSHAKE = `console.log(JSON.stringify({ protocol: 'sppo-judge', version: 1 }));`;
const READ = `import { createInterface } from 'node:readline';
const rl = createInterface({ input: process.stdin });`;
const judges: Record<string, string> = {
  'crash.mjs': `${READ}\n${HANDSHAKE}\nrl.on('line', () => { console.error('boom: the model fell over'); process.exit(3); });`,
  'malformed.mjs': `${READ}\n${HANDSHAKE}\nrl.on('line', () => console.log('hello, I am a chatty judge'));`,
  'wrongsize.mjs': `${READ}\n${HANDSHAKE}\nrl.on('line', (l) => { const r = JSON.parse(l); console.log(JSON.stringify({ id: r.id, scores: r.responses.slice(1).map(() => 1) })); });`,
  'badmatrix.mjs': `${READ}\n${HANDSHAKE}\nrl.on('line', (l) => { const r = JSON.parse(l); const k = r.responses.length; console.log(JSON.stringify({ id: r.id, probability: r.responses.map((_, i) => r.responses.map((_, j) => i === j ? 0.5 : 0.7)) })); });`,
  'unknownid.mjs': `${READ}\n${HANDSHAKE}\nrl.on('line', (l) => { const r = JSON.parse(l); console.log(JSON.stringify({ id: r.id + 1000, scores: r.responses.map(() => 0) })); });`,
  'nohandshake.mjs': `console.log(JSON.stringify({ hello: 'world' })); setInterval(() => {}, 1000);`,
  // Answers with a pairwise matrix favouring earlier responses; refuses prompts containing "refuse".
  'matrix.mjs': `${READ}\n${HANDSHAKE}\nrl.on('line', (l) => { const r = JSON.parse(l);
    if (r.prompt.includes('refuse')) { console.log(JSON.stringify({ id: r.id, error: 'I will not judge this' })); return; }
    const P = r.responses.map((_, i) => r.responses.map((_, j) => i === j ? 0.5 : i < j ? 0.75 : 0.25));
    console.log(JSON.stringify({ id: r.id, probability: P })); });`,
  // Hangs after the handshake, with a grandchild of its own (its pid goes to the file in argv[2]).
  'hang.mjs': `import { spawn } from 'node:child_process'; import { writeFileSync } from 'node:fs';
    const c = spawn('sleep', ['1000'], { stdio: 'ignore' }); writeFileSync(process.argv[2], String(c.pid));
    ${HANDSHAKE}\nprocess.stdin.resume(); setInterval(() => {}, 1000);`,
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sppo-judges-'));
  for (const [name, src] of Object.entries(judges)) writeFileSync(join(dir, name), src);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Alive and not a zombie (a container's init may not reap orphans at once). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function expectGone(pid: number | undefined): Promise<void> {
  expect(pid).toBeTypeOf('number');
  for (let i = 0; i < 50 && alive(pid!); i++) await new Promise((r) => setTimeout(r, 50));
  expect(alive(pid!)).toBe(false);
}

const node = (file: string, ...args: string[]) => `command:node ${join(dir, file)} ${args.join(' ')}`.trim();
const input = { prompt: 'Name a colour.', responses: ['Red.', 'Blue and green.', 'Hm.'] };

describe('command judge: the example length judge', () => {
  it('judges batches through the protocol and exits when closed', async () => {
    const { rand } = seededRandom('length judge');
    const judge = await createJudge('command:node examples/judges/length-judge.mjs', { commandTimeoutMs: 20_000 });
    expect(judge).toBeInstanceOf(CommandJudge);
    expect(judge.name).toBe('command:node examples/judges/length-judge.mjs');
    const words = ['a', 'bb', 'ccc', 'red', 'blue'];
    const batch = Array.from({ length: 6 }, (_, b) => ({
      prompt: `prompt ${b} "quoted" \n with a newline`,
      responses: Array.from({ length: 2 + Math.floor(rand() * 5) }, () =>
        Array.from({ length: Math.floor(rand() * 30) }, () => words[Math.floor(rand() * words.length)]).join(' '),
      ),
    }));
    for (let round = 0; round < 2; round++) {
      const out = await judge.judge(batch);
      expect(out).toHaveLength(batch.length);
      out.forEach((j, b) => {
        const n = batch[b]!.responses.map((r) => (r.trim() === '' ? 0 : r.trim().split(/\s+/).length));
        expect(j.scores).toEqual(n.map((x) => x / 10));
        j.probability.forEach((row, i) => row.forEach((v, k) => expect(v).toBeCloseTo(i === k ? 0.5 : sigmoid((n[i]! - n[k]!) / 10), 12)));
      });
    }
    // An empty batch asks nothing (and arms no timeout).
    expect(await judge.judge([])).toEqual([]);
    const pid = (judge as CommandJudge).pid;
    await judge.close();
    await expectGone(pid);
    await expect(judge.judge([input])).rejects.toThrow(/is closed/);
  });
});

describe('command judge: failures are clear and leave no process', () => {
  const cases: [string, string, RegExp][] = [
    ['crashes', 'crash.mjs', /judge 'command:node .*crash\.mjs' exited with code 3 with 1 request\(s\) unanswered[\s\S]*boom: the model fell over/],
    ['prints malformed JSON', 'malformed.mjs', /judge 'command:node .*malformed\.mjs' line 2 of its output is not valid JSON.*: hello, I am a chatty judge/],
    ['answers with the wrong size', 'wrongsize.mjs', /judge 'command:node .*wrongsize\.mjs', line 2 of its output \(request 0\): got 2 scores, expected 3/],
    ['answers with an inconsistent matrix', 'badmatrix.mjs', /judge 'command:node .*badmatrix\.mjs', line 2 of its output \(request 0\): probability\[0\]\[1\] \+ probability\[1\]\[0\] = 1\.4/],
    ['answers an unknown id', 'unknownid.mjs', /line 2 of its output answers id 1000, which is not an outstanding request/],
  ];
  it.each(cases)('a judge that %s', async (_what, file, msg) => {
    const judge = (await createJudge(node(file), { commandTimeoutMs: 20_000 })) as CommandJudge;
    await expect(judge.judge([input])).rejects.toThrow(msg);
    await expectGone(judge.pid);
    // The judge stays failed with the same message.
    await expect(judge.judge([input])).rejects.toThrow(msg);
    await judge.close();
  });

  it('a judge without the handshake, and a command that does not exist', async () => {
    await expect(createJudge(node('nohandshake.mjs'))).rejects.toThrow(/line 1 of its output should be the handshake \{"protocol":"sppo-judge","version":1\}, got: \{"hello":"world"\}/);
    await expect(createJudge('command:sppo-no-such-judge-command --flag')).rejects.toThrow(
      /judge 'command:sppo-no-such-judge-command --flag' exited with code 127 before its handshake line[\s\S]*not found/,
    );
  });

  it('a judge that hangs times out, and its whole process group is ended', async () => {
    const pidFile = join(dir, 'grandchild.pid');
    const judge = (await createJudge(node('hang.mjs', pidFile), { commandTimeoutMs: 400 })) as CommandJudge;
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    expect(alive(grandchild)).toBe(true);
    await expect(judge.judge([input, input])).rejects.toThrow(/judge 'command:node .*hang\.mjs .*' timed out: printed nothing for 0\.4 s while we waited for an answer; it was stopped/);
    await expectGone(judge.pid);
    await expectGone(grandchild);
    await judge.close();
  });

  it('a slow handshake times out too', async () => {
    await expect(createJudge('command:sleep 30', { commandStartupTimeoutMs: 300 })).rejects.toThrow(
      /judge 'command:sleep 30' timed out: printed nothing for 0\.3 s while we waited for its handshake line/,
    );
  });
});

describe('command judge: matrices and per-request errors', () => {
  it('takes probability answers and keeps working after a refused request', async () => {
    const judge = await createJudge(node('matrix.mjs'));
    const [j] = await judge.judge([input]);
    expect(j!.scores).toBeNull();
    expect(j!.probability).toEqual([
      [0.5, 0.75, 0.75],
      [0.25, 0.5, 0.75],
      [0.25, 0.25, 0.5],
    ]);
    await expect(judge.judge([input, { prompt: 'please refuse', responses: ['a'] }])).rejects.toThrow(
      /judge 'command:node .*matrix\.mjs' reported an error for request 2 \(line 4 of its output\): I will not judge this/,
    );
    const [again] = await judge.judge([{ prompt: 'x', responses: ['a', 'b'] }]);
    expect(again!.probability[0]![1]).toBe(0.75);
    const pid = (judge as CommandJudge).pid;
    await judge.close();
    await expectGone(pid);
  });

  it('validates the batch before sending it', async () => {
    const judge = await createJudge(node('matrix.mjs'));
    await expect(judge.judge([{ prompt: 'x', responses: [] }])).rejects.toThrow(/batch item 0: responses must be a non-empty array of strings/);
    await expect(judge.judge([{ prompt: 'x', responses: ['a', 3 as unknown as string] }])).rejects.toThrow(/batch item 0: responses\[1\] must be a string \(got 3\)/);
    await judge.close();
  });
});
