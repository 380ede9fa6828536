// What a user meets at the command line (issue 12): no judge outlives the CLI, even after kill -9
// (item 6); progress lines and log.txt when stderr is not a terminal (item 4); a flag given twice
// (item 8); output folders in words (item 9); random model folders from `init-model` (item 10).
// Spawns bin/sppo-native.js over dist/ (npm test builds it first).
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const repo = join(import.meta.dirname, '..');
const bin = join(repo, 'bin', 'sppo-native.js');
const haveDist = existsSync(join(repo, 'dist', 'cli', 'main.js'));
const root = mkdtempSync(join(tmpdir(), 'sppo-cli-user-'));
const prompts = join(repo, 'data', 'demo', 'prompts.jsonl');

function cli(args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, SPPO_NO_PROGRESS: '1', ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Alive and not a zombie (an orphan waits for the container's init to reap it). */
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

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!haveDist)('the CLI as a user meets it (runs bin/ over dist/; skipped when dist/ is not built, which `npm test` does first)', () => {
  it('kill -9 of the CLI ends a judge that ignores the end of its input and SIGTERM, and what it started', async () => {
    const { writeParquet } = await import('../src/data/parquet.js');
    const { rolloutColumns } = await import('../src/stages/rollout.js');
    const input = join(root, 'k9-generated.parquet');
    writeParquet(input, rolloutColumns([{ promptIndex: 0, prompt: 'why', promptTokens: [1], responses: ['a', 'b'], responseTokens: [[3], [4]], finishReasons: ['eos', 'eos'] }], 2));
    const pidFile = join(root, 'k9.pids');
    const script = join(root, 'stubborn.mjs');
    writeFileSync(script, `import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
process.on('SIGTERM', () => {});
process.stdin.on('end', () => {});
const child = spawn('sleep', ['1000'], { stdio: 'ignore' });
writeFileSync(${JSON.stringify(pidFile)}, process.pid + ' ' + child.pid);
console.log(JSON.stringify({ protocol: 'sppo-judge', version: 1 }));
setInterval(() => {}, 1000);\n`);
    const child = spawn(process.execPath, [bin, 'judge', '--input', input, '--judge', `command:node ${script}`, '--output', 'k9'], { cwd: root, stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_c, s) => r(s)));
    const t0 = Date.now();
    while (!existsSync(pidFile) && Date.now() - t0 < 20_000) await sleep(50);
    const pids = readFileSync(pidFile, 'utf8').split(' ').map(Number);
    await sleep(300); // the request is outstanding
    for (const p of pids) expect(alive(p)).toBe(true);
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const t1 = Date.now();
    while (pids.some(alive) && Date.now() - t1 < 6000) await sleep(50);
    for (const p of pids) expect(alive(p), `process ${p} outlived the CLI by ${Date.now() - t1} ms`).toBe(false);
  });

  it('init-model writes a random model folder of a preset or a config.json, which train and generate use', () => {
    const help = cli(['init-model', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--preset[\s\S]*100m = 100M parameters[\s\S]*1b = 1.1B parameters/);
    expect(cli(['--help']).stdout).toMatch(/init-model +Write a model folder with random weights/);
    const a = cli(['init-model', '--preset', 'tiny', '--output', 'tiny-a', '--seed', '3']);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout.trim()).toBe(join(root, 'tiny-a'));
    expect(a.stderr).toMatch(/writing a random model of 0.16M parameters/);
    const b = cli(['init-model', '--preset', 'tiny', '--output', 'tiny-b', '--seed', '3']);
    const c = cli(['init-model', '--preset', 'tiny', '--output', 'tiny-c', '--seed', '4']);
    expect(b.code).toBe(0);
    expect(c.code).toBe(0);
    const weights = (d: string): Buffer => readFileSync(join(root, d, 'model.safetensors'));
    expect(weights('tiny-a').equals(weights('tiny-b'))).toBe(true);
    expect(weights('tiny-a').equals(weights('tiny-c'))).toBe(false);
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']) expect(existsSync(join(root, 'tiny-a', f)), f).toBe(true);

    const cfg = join(root, 'my-config.json');
    writeFileSync(cfg, JSON.stringify({ architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 300, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 128, rms_norm_eps: 1e-5, bos_token_id: 1, eos_token_id: 2 }));
    const m = cli(['init-model', '--config', cfg, '--output', 'mine', '--dtype', 'bfloat16']);
    expect(m.code, m.stderr).toBe(0);
    const written = JSON.parse(readFileSync(join(root, 'mine', 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(written).toMatchObject({ vocab_size: 300, hidden_size: 32, torch_dtype: 'bfloat16' });
    const header = readFileSync(join(root, 'mine', 'model.safetensors'));
    expect(header.subarray(8, 8 + Number(header.readBigUInt64LE(0))).toString()).toMatch(/"dtype":"BF16"/);

    // The folder is a model: generate samples from it.
    const g = cli(['generate', '--model', 'mine', '--prompts', prompts, '--max-prompts', '3', '-k', '2', '--max-new-tokens', '4', '--output', 'gen-mine']);
    expect(g.code, g.stderr).toBe(0);

    const again = cli(['init-model', '--preset', 'tiny', '--output', 'tiny-a']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/--output .*tiny-a already exists and is not an empty folder/);
    expect(cli(['init-model', '--output', 'x']).stderr).toMatch(/give exactly one of --config <config.json> and --preset <size>/);
    expect(cli(['init-model', '--config', 'nothing.json', '--output', 'y']).stderr).toMatch(/--config .*nothing.json: no such file/);
    const tooSmall = join(root, 'small-vocab.json');
    writeFileSync(tooSmall, JSON.stringify({ ...JSON.parse(readFileSync(cfg, 'utf8')), vocab_size: 64 }));
    const t = cli(['init-model', '--config', tooSmall, '--output', 'no-tok']);
    expect(t.code).toBe(0);
    expect(t.stderr).toMatch(/the demo tokenizer does not fit vocab_size 64; no tokenizer files written/);
    expect(cli(['init-model', '--config', tooSmall, '--output', 'no-tok2', '--tokenizer-from', 'demo']).stderr).toMatch(/its ids go up to 124, but the config's vocab_size is 64/);
  });

  it('with stderr not a terminal: progress lines, a line per optimizer step, and log.txt in the run folder', () => {
    const made = cli(['init-model', '--preset', 'tiny', '--output', 'progress-model']);
    expect(made.code, made.stderr).toBe(0);
    const env = { SPPO_NO_PROGRESS: '', SPPO_PROGRESS_EVERY: '0' };
    const g = cli(['generate', '--model', 'progress-model', '--prompts', prompts, '--max-prompts', '6', '-k', '2', '--max-new-tokens', '4', '--rollout-batch', '2', '--output', 'gen-progress'], env);
    expect(g.code, g.stderr).toBe(0);
    expect(g.stderr).toMatch(/^generate: 4\/12 samples \(33%\), [\d.]+ samples\/s, elapsed [\d.]+s, ETA [\d.]+s$/m);
    expect(g.stderr).toMatch(/^generate: 12\/12 samples done in [\d.]+s/m);
    expect(readFileSync(join(root, 'gen-progress', 'log.txt'), 'utf8')).toMatch(/Z generate: 12\/12 samples done in/);

    const tr = cli(['train', '--model', 'progress-model', '--prompts', prompts, '--judge', 'builtin:demo', '--output', 'run-progress', '--iterations', '1',
      '--max-prompts', '8', '-k', '2', '--max-new-tokens', '4', '--global-batch', '4', '--micro-batch', '2', '--max-length', '64', '--max-prompt-tokens', '32', '--eval-prompts', '4'], env);
    expect(tr.code, tr.stderr).toBe(0);
    for (const re of [
      /^iteration 1 rollout: 16\/16 samples done in/m, /^iteration 1 judge: 8\/8 prompts done in/m, /^iteration 1 reference: 8\/8 pairs done in/m,
      /^iteration 1 step 2\/2: loss [\d.e+-]+, loss·β² [\d.e+-]+, margin [\d.e+-]+, lr [\d.e+-]+, grad norm [\d.e+-]+, \d+ tokens\/s$/m,
      /^iteration 1 eval judge: 4\/4 comparisons done in/m,
    ]) expect(tr.stderr).toMatch(re);
    const log = readFileSync(join(root, 'run-progress', 'log.txt'), 'utf8');
    expect(log).toMatch(/Z iteration 1 step 1\/2: loss/);
    expect(log).toMatch(/Z iteration 1: win rate against the starting policy/);
  });

  it('a flag given twice, and an output that is a file, are refused in words', () => {
    const twice = cli(['train', '-k', '6', '-k', '4']);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/^sppo-native: -k was given 2 times \(6, 4\); give it once$/m);
    expect(twice.stderr).not.toMatch(/must be an integer/);
    writeFileSync(join(root, 'a-file'), 'x');
    const file = cli(['train', '--output', 'a-file']);
    expect(file.code).toBe(1);
    expect(file.stderr).toMatch(/sppo-native: --output .*a-file is a file, not a folder/);
    expect(file.stderr).not.toMatch(/EEXIST/);
    const help = cli(['train', '--help']).stdout;
    expect(help).toMatch(/--judge-timeout[\s\S]*recipe: judgeTimeout; default: 600/);
    expect(help).toMatch(/--prompt-invalid-utf8/);
  });
});
