// The CLI end to end on the real engine: the demo at reduced size, resume equivalence under
// SIGKILL at random moments, and clear errors for bad input. Spawns bin/sppo-native.js, which
// runs the compiled dist/ (npm test builds it first).
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { seededRandom } from './sppo.seed.js';

const repo = join(import.meta.dirname, '..');
const bin = join(repo, 'bin', 'sppo-native.js');
const haveDist = existsSync(join(repo, 'dist', 'cli', 'main.js'));
const root = mkdtempSync(join(tmpdir(), 'sppo-cli-'));
const { rand } = seededRandom('pipeline.cli');

function cli(args: string[]): { code: number | null; stdout: string; stderr: string; ms: number } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, SPPO_NO_PROGRESS: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

/** Starts the CLI and SIGKILLs it after `ms` (if still running); resolves when it is gone. */
function runAndKill(args: string[], ms: number): Promise<'killed' | 'finished'> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: root, stdio: 'ignore', env: { ...process.env, SPPO_NO_PROGRESS: '1' } });
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('exit', (_code, signal) => {
      clearTimeout(timer);
      resolve(signal === 'SIGKILL' ? 'killed' : 'finished');
    });
  });
}

function files(dir: string, keep: (f: string) => boolean): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, n.name);
      if (n.isDirectory()) walk(p);
      else if (keep(p)) out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

// The demo recipe at reduced size (few prompts, two iterations), so each run takes about a second.
const small = ['--iterations', '2', '--epochs', '2', '--max-prompts', '16', '--shard-size', '4', '-k', '4', '--eval-prompts', '8', '--global-batch', '4', '--micro-batch', '2'];

describe.skipIf(!haveDist)('the CLI on the real engine (runs bin/ over dist/; skipped when dist/ is not built, which `npm test` does first)', () => {
  it('runs the full demo with no arguments: its last iteration wins at least 75% of comparisons', () => {
    const r = cli(['train']);
    expect(r.code, r.stderr).toBe(0);
    console.log(`[pipeline.cli] demo: ${r.ms} ms\n${r.stdout}`);
    const summary = JSON.parse(readFileSync(join(root, 'runs/demo/summary.json'), 'utf8')) as { iterations: { winRate: { n: number; wins: number; winRate: number } }[] };
    expect(summary.iterations).toHaveLength(3);
    const last = summary.iterations[2]!.winRate;
    expect(last.n).toBe(256);
    expect(last.wins / last.n).toBeGreaterThanOrEqual(0.75); // strict wins; ties not counted
    expect(r.stdout).toMatch(/iteration 3: win rate against the starting policy/);
    // Rerunning the finished demo does no work and prints the same table.
    const again = cli(['train']);
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/iteration 3: iteration skipped/);
    expect(again.stdout.slice(again.stdout.indexOf('win rate against the starting policy ('))).toBe(r.stdout.slice(r.stdout.indexOf('win rate against the starting policy (')));
  });

  it('runs the demo at reduced size and prints each iteration\'s win rate', () => {
    const r = cli(['train', '--output', 'runs/small', ...small]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/sppo-native demo: the demo recipe .*recipe.yaml/);
    expect(r.stdout).toMatch(/iteration 1: win rate against the starting policy \d+\.\d% \[95% CI/);
    expect(r.stdout).toMatch(/iteration 2: win rate against the starting policy/);
    const summary = JSON.parse(readFileSync(join(root, 'runs/small/summary.json'), 'utf8')) as { iterations: { winRate: { n: number } }[] };
    expect(summary.iterations).toHaveLength(2);
    expect(summary.iterations[1]!.winRate.n).toBe(16);
    expect(existsSync(join(root, 'runs/small/iter-2/checkpoint-epoch-2/model.safetensors'))).toBe(true);
    // generate -> judge -> eval on the run's models.
    const prompts = join(repo, 'data/demo/prompts.jsonl');
    const g = cli(['generate', '--model', 'runs/small/base-model', '--prompts', prompts, '--max-prompts', '6', '-k', '3', '--max-new-tokens', '5', '--output', 'gen']);
    expect(g.code, g.stderr).toBe(0);
    expect(g.stdout.trim()).toBe(join(root, 'gen', 'generated.parquet'));
    const j = cli(['judge', '--input', 'gen/generated.parquet', '--judge', 'builtin:demo', '--output', 'gen']);
    expect(j.code, j.stderr).toBe(0);
    expect(existsSync(join(root, 'gen', 'train.parquet'))).toBe(true);
    const e = cli(['eval', '--model-a', 'runs/small/iter-2/checkpoint-epoch-2', '--model-b', 'runs/small/base-model', '--prompts', prompts,
      '--judge', 'builtin:demo', '--max-prompts', '10', '--max-new-tokens', '16', '--temperature', '1', '--top-p', '1', '--json']);
    expect(e.code, e.stderr).toBe(0);
    const w = JSON.parse(e.stdout) as { n: number; lower: number; upper: number; winRate: number };
    expect(w.n).toBe(10);
    expect(w.lower).toBeLessThanOrEqual(w.winRate);
    expect(w.upper).toBeGreaterThanOrEqual(w.winRate);
  });

  it('a run killed at random moments and rerun ends byte-identical to an uninterrupted one', async () => {
    const ref = cli(['train', '--output', 'runs/ref', ...small]);
    expect(ref.code, ref.stderr).toBe(0);
    const args = ['train', '--output', 'runs/killed', ...small];
    // Kill early and often: each rerun resumes, so short random windows land all over the run.
    // A resumed run has less left to do, and on a machine whose load drops after the reference
    // run it may finish inside its window after a single kill; such a round starts over from an
    // empty folder (at most three rounds), so that the run is always killed at least twice.
    let outcomes: string[] = [];
    const kills = (): number => outcomes.filter((o) => o === 'killed').length;
    for (let round = 0; round < 3 && kills() < 2; round++) {
      rmSync(join(root, 'runs/killed'), { recursive: true, force: true });
      outcomes = [];
      while (outcomes.length < 12) {
        const o = await runAndKill(args, 60 + rand() * 0.5 * ref.ms);
        outcomes.push(o);
        if (o === 'finished') break;
      }
    }
    expect(kills()).toBeGreaterThanOrEqual(2);
    console.log(`[pipeline.cli] kills: ${outcomes.join(', ')} (uninterrupted run ${ref.ms} ms)`);
    const last = cli(args);
    expect(last.code, last.stderr).toBe(0);
    // No temp files survive the kills (the last run removes what killed ones left).
    expect(files(join(root, 'runs/killed'), (f) => /\.tmp-\d+-/.test(f))).toEqual([]);
    const keep = (f: string): boolean => (/\.(safetensors|parquet)$/.test(f) && !f.includes('/resume/') && !/\.tmp-/.test(f)) || f.endsWith('prompts.jsonl');
    const a = files(join(root, 'runs/ref'), keep);
    const b = files(join(root, 'runs/killed'), keep);
    expect(b).toEqual(a);
    expect(a.filter((f) => f.endsWith('model.safetensors')).length).toBe(5); // base + 2 epochs x 2 iterations
    for (const f of a) expect(readFileSync(join(root, 'runs/killed', f)).equals(readFileSync(join(root, 'runs/ref', f))), f).toBe(true);
    // metrics.jsonl: every step exactly once with the same numbers (tokens/s aside).
    for (const it of [1, 2]) {
      const m = (run: string) => readFileSync(join(root, run, `iter-${it}`, 'metrics.jsonl'), 'utf8').trim().split('\n')
        .map((l) => { const { 'tokens/s': _, ...rest } = JSON.parse(l) as Record<string, number>; return rest; });
      expect(m('runs/killed')).toEqual(m('runs/ref'));
    }
  });

  it('bad input exits 1 with a clear message', () => {
    const noModel = cli(['train', '--model', join(root, 'nothing'), '--prompts', 'p.jsonl', '--judge', 'builtin:demo', '--output', 'runs/bad']);
    expect(noModel.code).toBe(1);
    expect(noModel.stderr).toMatch(/sppo-native: model folder .*nothing has no config.json/);
    writeFileSync(join(root, 'q.jsonl'), '{"question": "why"}\n');
    const col = cli(['train', '--prompts', 'q.jsonl', '--output', 'runs/bad2']);
    expect(col.code).toBe(1);
    expect(col.stderr).toMatch(/has no column 'prompt' \(columns: question\); choose one with --prompt-column/);
    const flag = cli(['train', '--lr', 'fast']);
    expect(flag.code).toBe(1);
    expect(flag.stderr).toMatch(/--lr: train.lr must be a finite number \(got 'fast'\)/);
    const recipe = join(root, 'r.yaml');
    writeFileSync(recipe, 'train:\n  learning_rate: 1\n');
    const unk = cli(['train', '--recipe', recipe]);
    expect(unk.code).toBe(1);
    expect(unk.stderr).toMatch(/unknown key 'train.learning_rate'/);
  });
});

// Needs no model: `judge` with a command judge, and --help.
describe.skipIf(!haveDist)('the CLI without a model (runs bin/ over dist/; skipped when dist/ is not built, which `npm test` does first)', () => {
  it('Ctrl-C / SIGTERM ends a running command judge and exits 130 / 143', async () => {
    const { writeParquet } = await import('../src/data/parquet.js');
    const { rolloutColumns } = await import('../src/stages/rollout.js');
    const input = join(root, 'sig-generated.parquet');
    writeParquet(input, rolloutColumns([{ promptIndex: 0, prompt: 'why', promptTokens: [1], responses: ['a', 'b'], responseTokens: [[3], [4]], finishReasons: ['eos', 'eos'] }], 2));
    for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
      const pidFile = join(root, `sig-${signal}.pid`);
      const script = join(root, `sig-${signal}.mjs`);
      // Handshakes, records its pid, then never answers (and ignores the end of its stdin).
      writeFileSync(script, `import { writeFileSync } from 'node:fs';
writeFileSync(${JSON.stringify(pidFile)}, String(process.pid));
console.log(JSON.stringify({ protocol: 'sppo-judge', version: 1 }));
setInterval(() => {}, 1000);\n`);
      const child = spawn(process.execPath, [bin, 'judge', '--input', input, '--judge', `command:node ${script}`, '--output', `sig-${signal}`], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      const t0 = Date.now();
      while (!existsSync(pidFile) && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 50));
      expect(existsSync(pidFile), stderr).toBe(true);
      const judgePid = Number(readFileSync(pidFile, 'utf8'));
      await new Promise((r) => setTimeout(r, 300)); // the request is outstanding now
      child.kill(signal);
      expect(await exited, stderr).toBe(code);
      expect(stderr).toMatch(new RegExp(`${signal}: stopping`));
      const alive = (): boolean => { try { process.kill(judgePid, 0); return true; } catch { return false; } };
      const t1 = Date.now();
      while (alive() && Date.now() - t1 < 3000) await new Promise((r) => setTimeout(r, 50));
      expect(alive(), `judge ${judgePid} still runs after ${signal}`).toBe(false);
    }
  });

  it('--help describes each command\'s flags as that command uses them', () => {
    const gen = cli(['generate', '--help']);
    expect(gen.code).toBe(0);
    expect(gen.stdout).not.toMatch(/"demo"|one per iteration|per iteration|runs\/sppo|for prompt splits|recipe:/);
    expect(gen.stdout).toMatch(/--output +Output folder: generated.parquet[^[]*\[string\] \[required\]/);
    expect(gen.stdout).toMatch(/--prompt-split-name/);
    const ev = cli(['eval', '--help']);
    expect(ev.code).toBe(0);
    expect(ev.stdout).not.toMatch(/"demo"|one per iteration|per iteration|runs\/sppo|for prompt splits|recipe:/);
    expect(ev.stdout).toMatch(/--seed +Sampling seed \(both models sample with the same seeds\)/);
    const tr = cli(['train', '--help']);
    expect(tr.stdout).toMatch(/--weight-decay +Weight decay: decoupled for AdamW[\s\S]*for\s+RMSprop\s+an\s+L2\s+term added to the gradient/);
    const two = cli(['generate', '--model', 'm', '--prompts', 'a.jsonl', 'b.jsonl', '--output', 'o']);
    expect(two.code).toBe(1);
    expect(two.stderr).toMatch(/generate takes one prompt file with --prompts \(got 2/);
  });
});
