// Cancelling long native work: model.cancel() stops a generation within about a decode step (the
// promise rejects with CancelledError, the model stays usable), and Ctrl-C / SIGTERM on the CLI
// exits within about two seconds during a long `generate`, with the exit code of the signal.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CancelledError, createRandomModel } from '../src/model/engine.js';
import { writeRandomModelFolder } from '../src/model/randomFolder.js';
import { native, packageRoot } from '../src/native/addon.js';

const repo = join(import.meta.dirname, '..');
const bin = join(repo, 'bin', 'sppo-native.js');
const haveDist = existsSync(join(repo, 'dist', 'cli', 'main.js'));

// The demo's vocabulary (so the demo tokenizer fits), with enough width and depth that a step
// takes a few milliseconds, and room for long generations.
function slowConfig(): Record<string, unknown> {
  const demo = JSON.parse(readFileSync(join(packageRoot, 'data', 'demo', 'model-config.json'), 'utf8')) as Record<string, unknown>;
  return { ...demo, hidden_size: 256, intermediate_size: 512, num_hidden_layers: 4, max_position_embeddings: 16384 };
}

describe('cancelling native work', () => {
  it('model.cancel() stops a long generation within a second and the model works afterwards', async () => {
    const m = await createRandomModel(slowConfig(), 3);
    try {
      const prompts = Array.from({ length: 8 }, (_, i) => [1, 5 + i, 9, 11]);
      const opts = { maxNewTokens: 8000, temperature: 1, topP: 1, eosTokenIds: [] as number[], samples: 8 };
      const t0 = Date.now();
      const run = m.generate(prompts, prompts.map((_, i) => i), opts);
      await new Promise((r) => setTimeout(r, 300));
      m.cancel();
      const t1 = Date.now();
      await expect(run).rejects.toBeInstanceOf(CancelledError);
      const stopMs = Date.now() - t1;
      console.log(`[model.cancel] stopped ${stopMs} ms after cancel() (${t1 - t0} ms in)`);
      expect(stopMs).toBeLessThan(1000);
      // A cancel only stops the call in flight: the next call runs to the end.
      const after = await m.generate([[1, 2, 3]], [0], { ...opts, maxNewTokens: 4, samples: 2 });
      expect(after).toHaveLength(2);
      expect(after.every((g) => g.tokens.length === 4)).toBe(true);
    } finally {
      m.free();
    }
  });

  it('a cancel() issued while the call still waits for a worker thread (queued behind other native work) stops it', async () => {
    // Every libuv worker is taken by a long generation on another model, so the call below is
    // queued: cancel() must reach it although its work has not started (the ticket is the call's
    // from the moment it is made, not from when a thread picks it up; on a device backend the
    // wait is also the device lock's).
    const pool = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    const blockers = await Promise.all(Array.from({ length: pool }, (_, i) => createRandomModel(slowConfig(), 10 + i)));
    const m = await createRandomModel(slowConfig(), 3);
    try {
      const long = { maxNewTokens: 8000, temperature: 1, topP: 1, eosTokenIds: [] as number[], samples: 4 };
      const busy = blockers.map((b, i) => b.generate([[1, 2 + i, 3]], [i], long).catch((e: unknown) => e));
      await new Promise((r) => setTimeout(r, 300)); // the blockers are running
      const queued = m.generate([[1, 2, 3]], [7], { ...long, maxNewTokens: 40, samples: 2 });
      m.cancel();
      for (const b of blockers) b.cancel();
      await expect(queued).rejects.toBeInstanceOf(CancelledError);
      for (const e of await Promise.all(busy)) expect(e).toBeInstanceOf(CancelledError);
      const after = await m.generate([[1, 2, 3]], [0], { ...long, maxNewTokens: 4, samples: 2 });
      expect(after).toHaveLength(2);
    } finally {
      m.free();
      for (const b of blockers) b.free();
    }
  });

  it.skipIf(!haveDist)('Ctrl-C and SIGTERM end a long `generate` within two seconds (runs bin/ over dist/, which `npm test` builds first)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'sppo-cancel-'));
    const folder = join(root, 'model');
    writeRandomModelFolder(folder, slowConfig(), 5);
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(packageRoot, 'data', 'demo', f), join(folder, f));
    const prompts = join(root, 'prompts.jsonl');
    writeFileSync(prompts, Array.from({ length: 8 }, (_, i) => JSON.stringify({ prompt: `say something ${i}` })).join('\n'));
    for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
      const child = spawn(process.execPath, [bin, 'generate', '--model', folder, '--prompts', prompts, '-k', '16', '--max-new-tokens', '8000',
        '--rollout-batch', '8', '--output', join(root, `out-${signal}`)], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SPPO_NO_PROGRESS: '1' } });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      await new Promise((r) => setTimeout(r, 2500)); // past start-up, inside the generate call
      const t0 = Date.now();
      child.kill(signal);
      const got = await exited;
      const ms = Date.now() - t0;
      console.log(`[model.cancel] ${signal}: exited ${code === got ? 'with ' + code : 'with ' + String(got)} after ${ms} ms`);
      expect(got, stderr).toBe(code);
      expect(stderr).toMatch(new RegExp(`${signal}: stopping`));
      expect(ms).toBeLessThan(2000);
    }
  });

  it('the kind lists of TypeScript equal the native core\'s', async () => {
    const { LOSS_TYPES, OPTIMIZER_KINDS } = await import('../src/native/kinds.js');
    expect(native().lossTypes).toEqual([...LOSS_TYPES]);
    expect(native().optimizerKinds).toEqual([...OPTIMIZER_KINDS]);
  });
});
