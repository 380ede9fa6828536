// Data parallel through the real CLI, with real processes: world sizes 2 and 3 against one process
// on the same global batch, ZeRO-1 against plain data parallel, ranks started by launcher
// variables against --nproc-per-node, a rank killed mid-training, and the rendezvous refusing a
// rank whose settings differ. The demo recipe at a reduced size keeps each run around a second.
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readParquet } from '../src/data/parquet.js';
import { TABLES, freePort, metrics, run, runRanks, sameBytes, start, weightGap } from './helpers/distRuns.js';

const tmp = mkdtempSync(join(tmpdir(), 'sppo-dist-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SMALL = ['train', '--iterations', '2', '--max-prompts', '48', '--eval-prompts', '0', '--dist-timeout', '30'];
const ckpt = (dir: string, t: number): string => join(dir, `iter-${t}`, 'checkpoint-epoch-1', 'model.safetensors');
const base = (dir: string): string => join(dir, 'base-model', 'model.safetensors');

function expectOk(r: { code: number | null; err: string }): void {
  if (r.code !== 0) throw new Error(`exit ${r.code}:\n${r.err}`);
}

/** Metrics lines equal but for the wall-clock rate, each value to `rtol` (0: exactly). */
function expectSameMetrics(a: string, b: string, rtol: number): void {
  for (const t of [1, 2]) {
    const ma = metrics(a, t);
    const mb = metrics(b, t);
    expect(mb.length).toBe(ma.length);
    ma.forEach((x, i) => {
      for (const [k, v] of Object.entries(x)) {
        if (k === 'tokens/s') continue;
        const w = mb[i]![k]!;
        if (rtol === 0) expect(w, `${b} iteration ${t} step ${i + 1} ${k}`).toBe(v);
        else expect(Math.abs(w - v), `${b} iteration ${t} step ${i + 1} ${k}: ${w} vs ${v}`).toBeLessThanOrEqual(rtol * Math.max(1, Math.abs(v)));
      }
    });
  }
}

describe('data parallel over CPU processes', () => {
  const one = join(tmp, 'w1');

  it('world sizes 2 and 3 give the tables of one process bit for bit, its metrics and weights to fp32 rounding, and ZeRO-1 gives plain data parallel bit for bit', async () => {
    expectOk(await run([...SMALL, '--output', one]));
    const runs = await Promise.all([
      run([...SMALL, '--output', join(tmp, 'w2'), '--nproc-per-node', '2']),
      run([...SMALL, '--output', join(tmp, 'w3'), '--nproc-per-node', '3']),
    ]);
    runs.forEach(expectOk);
    const z = await run([...SMALL, '--output', join(tmp, 'w2z'), '--nproc-per-node', '2', '--zero1']);
    expectOk(z);
    for (const w of ['w2', 'w3']) {
      const dir = join(tmp, w);
      // Iteration 1's tables depend on pi_0 only: bit for bit. Iteration 2 samples from pi_2, whose
      // weights agree to rounding: the same samples for these inputs (a draw would have to fall
      // within rounding of a token boundary to differ), reference log-probs to 1e-5.
      for (const table of TABLES) expect(sameBytes(join(one, 'iter-1', table), join(dir, 'iter-1', table)), `${w} iter-1/${table}`).toBe(true);
      for (const table of TABLES.slice(0, 3)) expect(sameBytes(join(one, 'iter-2', table), join(dir, 'iter-2', table)), `${w} iter-2/${table}`).toBe(true);
      const [ra, rb] = await Promise.all([readParquet(join(one, 'iter-2', 'ref_logprobs.parquet')), readParquet(join(dir, 'iter-2', 'ref_logprobs.parquet'))]);
      ra.rows.forEach((row, i) => {
        for (const k of ['ref_chosen_logp', 'ref_rejected_logp']) {
          const a = row[k] as number;
          expect(Math.abs((rb.rows[i]![k] as number) - a)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(a)));
        }
      });
      // The global batch's gradient is summed over ranks in another association than one
      // process's, so the weights agree to fp32 rounding, which RMSprop amplifies where a gradient
      // is itself at rounding level (its step is lr * g / sqrt(v), about lr whatever g's size).
      // Stated tolerances: ||w_W - w_1|| <= 1e-3 ||w_1 - w_0|| over the whole model, and no single
      // weight off by more than 5% of the largest change training made; metrics to 1e-4.
      for (const t of [1, 2]) {
        const { gap, moved, l2gap, l2moved } = weightGap(ckpt(dir, t), ckpt(one, t), base(one));
        expect(moved).toBeGreaterThan(1e-3);
        expect(l2gap, `${w} iteration ${t}: ||w_W - w_1|| = ${l2gap}, ||w_1 - w_0|| = ${l2moved}`).toBeLessThanOrEqual(1e-3 * l2moved);
        expect(gap, `${w} iteration ${t}: max |w_W - w_1| = ${gap}, moved ${moved}`).toBeLessThanOrEqual(0.05 * moved);
      }
      expectSameMetrics(one, dir, 1e-4);
    }
    // ZeRO-1: the same sums, norm and update as plain data parallel: identical weights and metrics.
    for (const t of [1, 2]) expect(sameBytes(ckpt(join(tmp, 'w2'), t), ckpt(join(tmp, 'w2z'), t)), `ZeRO-1 iteration ${t} weights`).toBe(true);
    expectSameMetrics(join(tmp, 'w2'), join(tmp, 'w2z'), 0);
    // Rank 0 wrote the shared files; the other ranks their own logs only.
    expect(existsSync(join(tmp, 'w3', 'log.rank-2.txt'))).toBe(true);
    expect(readFileSync(join(tmp, 'w3', 'log.txt'), 'utf8')).toMatch(/data parallel: rank 0 of 3 \(host communicator\)/);
  }, 180_000);

  it('ranks started by launcher variables (torchrun, Kubernetes) give what --nproc-per-node gives, bit for bit', async () => {
    const env = join(tmp, 'env2');
    const ranks = await runRanks(2, () => [...SMALL, '--output', env], freePort());
    ranks.forEach(expectOk);
    const launched = join(tmp, 'w2');
    if (!existsSync(ckpt(launched, 2))) expectOk(await run([...SMALL, '--output', launched, '--nproc-per-node', '2']));
    for (const t of [1, 2]) {
      for (const table of TABLES) expect(sameBytes(join(launched, `iter-${t}`, table), join(env, `iter-${t}`, table)), `iter-${t}/${table}`).toBe(true);
      expect(sameBytes(ckpt(launched, t), ckpt(env, t)), `iteration ${t} weights`).toBe(true);
    }
    expectSameMetrics(launched, env, 0);
    // Only rank 0 prints the run; rank 1 says nothing unless something needs a reader.
    expect(ranks[0]!.out).toMatch(/final policy/);
    expect(ranks[1]!.out).toBe('');
  }, 120_000);

  it('a rank killed mid-training ends every rank within the timeout naming it, and the rerun finishes as an uninterrupted run', async () => {
    const args = ['train', '--iterations', '1', '--epochs', '3', '--max-new-tokens', '24', '--max-length', '64', '--global-batch', '16', '--micro-batch', '2', '--eval-prompts', '0', '--dist-timeout', '20'];
    const whole = join(tmp, 'k-whole');
    const cut = join(tmp, 'k-cut');
    const ref = start([...args, '--output', whole, '--nproc-per-node', '3']);
    const victim = start([...args, '--output', cut, '--nproc-per-node', '3']);
    const pid = Number((await victim.waitFor(/rank 1 is pid (\d+)/))[1]);
    await victim.waitFor(/iteration 1 step 2\//);
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    const r = await victim.done;
    const took = (Date.now() - killedAt) / 1000;
    expect(r.code).not.toBe(0);
    expect(took).toBeLessThan(20);
    expect(existsSync(join(cut, 'iter-1', 'train.done.json'))).toBe(false); // it stopped mid-training
    // The launcher and both surviving ranks name rank 1.
    expect(r.err).toMatch(new RegExp(`rank 1 \\(pid ${pid}\\) was killed by SIGKILL`));
    // Rank 2 hears of it first from its dropped connection, or from the launcher through the store.
    expect(r.err).toMatch(new RegExp(`sppo-native \\[rank 2\\]: .*rank 1 \\(pid ${pid} on [^)]+\\) (disconnected|was killed by SIGKILL)|sppo-native \\[rank 2\\]: .*rank 1 \\(pid ${pid}\\) exited`));
    expect(r.err).not.toMatch(/\(pid \d+[^)]*\) \(pid \d+\)/); // the pid once
    expect(r.err).toMatch(/sppo-native \[rank 0\]: .*rank 1/);
    expectOk(await ref.done);
    // Rerunning the same command resumes and ends where the uninterrupted run ended.
    const again = await run([...args, '--output', cut, '--nproc-per-node', '3']);
    expectOk(again);
    expect(again.err).toMatch(/resuming training at step/);
    expect(sameBytes(ckpt(whole, 1), ckpt(cut, 1))).toBe(true);
    const a = metrics(whole, 1);
    const b = metrics(cut, 1);
    expect(b.map((m) => m.step)).toEqual(a.map((m) => m.step));
    a.forEach((m, i) => expect({ ...b[i], 'tokens/s': 0 }).toEqual({ ...m, 'tokens/s': 0 }));
    for (const table of TABLES) expect(sameBytes(join(whole, 'iter-1', table), join(cut, 'iter-1', table)), table).toBe(true);
  }, 240_000);

  it('the rendezvous refuses a rank whose settings differ, naming the setting, and every rank ends', async () => {
    const dir = join(tmp, 'mismatch');
    const ranks = await runRanks(2, (r) => [...SMALL, '--output', dir, ...(r === 1 ? ['--lr', '0.001'] : [])], freePort());
    for (const r of ranks) {
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(/refused this run: rank 1 \(pid \d+ on [^)]+\) was started with other settings than rank 0: train\.lr \(rank 0: 0\.0005, here: 0\.001\)/);
    }
    expect(existsSync(join(dir, 'iter-1'))).toBe(false);
  }, 60_000);
});
