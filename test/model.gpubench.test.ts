// The model benchmark's plumbing (not its speed): the native executable's CPU run writes a JSON
// report whose derived columns agree with its raw ones, the issues' presets have the shapes they
// claim and are planned against the card's memory without a GPU (--plan-only), --device cuda is
// refused with the reason where no GPU is visible, bad flags are named, and bench/compare-model.mjs
// computes its ratios from the reports it is given.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaAvailable } from '../src/native/addon.js';
// @ts-expect-error: a plain ES module of the bench scripts, without types
import { compareModel, formatModelTable } from '../bench/compare-model.mjs';

const exe = join(process.cwd(), 'build', 'bench', 'bench_model');
const built = existsSync(exe);
const dir = mkdtempSync(join(tmpdir(), 'sppo-gpubench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(exe, args, { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

describe.skipIf(!built)('bench_model executable (skipped: build/bench/bench_model is not built)', () => {
  it('runs a tiny model on the CPU and writes a consistent JSON report', () => {
    const json = join(dir, 'cpu.json');
    const r = run(['--layers', '1', '--hidden', '64', '--vocab', '300', '--batch', '1', '--seq', '16', '--new', '2', '--repeat', '1', '--k', '2', '--json', json]);
    expect(r.status, r.err).toBe(0);
    expect(r.out).toMatch(/train step \(checkpointing\)/);
    const rep = JSON.parse(readFileSync(json, 'utf8'));
    expect(rep).toMatchObject({ suite: 'model', source: 'native', device: 'cpu', precision: 'fp32', hidden: 64, vocab: 300 });
    expect(rep.results.map((x: { name: string }) => x.name)).toEqual([
      'train step', 'train step (checkpointing)', 'sequence log-probs (forward)', 'generate (2 prompts, KV cache)',
      'rollout prefill, K=2 shared', 'rollout prefill, 2 separate',
    ]);
    for (const x of rep.results) {
      expect(x.seconds).toBeGreaterThan(0);
      expect(Math.abs(x.tokensPerSecond - x.tokens / x.seconds) / x.tokensPerSecond).toBeLessThan(1e-6);
    }
    expect(rep.results[0].tokens).toBe(2 * 1 * 16);  // one pair: chosen and rejected rows
  });

  it('plans the issue presets without a GPU: the shapes they claim, and the micro-batch that fits', () => {
    const one = run(['--preset', 'llama-1b', '--plan-only', '1']);
    expect(one.status, one.err).toBe(0);
    expect(one.out).toMatch(/V=32000 H=2048 I=5632 L=22 heads=32\/4 params=1\.100B/);
    expect(one.out).toMatch(/train step \(adamw\): 8 of 8 pairs x 1024 fit/);
    expect(one.out).toMatch(/rollout 64 x \(128 \+ 256\): fits/);
    const seven = run(['--preset', 'mistral-7b', '--plan-only', '1']);
    expect(seven.out).toMatch(/params=7\.242B/);
    expect(seven.out).toMatch(/train step \(rmsprop, checkpointing\): 8 of 8 pairs x 1024 fit/);
    // fp32 weights, gradients and RMSprop state of 7.24B parameters alone are 81 GiB: on 80 GiB nothing fits.
    const small = run(['--preset', 'mistral-7b', '--plan-only', '1', '--memory-gib', '80']);
    expect(small.out).toMatch(/: 0 of 8 pairs x 1024 fit/);
    const planned = (gibs: string) => Number(/plan training\s+([\d.]+) GiB/.exec(run(['--preset', 'mistral-7b', '--plan-only', '1', '--memory-gib', gibs]).out)![1]);
    expect(planned('96')).toBeLessThanOrEqual(96);  // a smaller micro-batch where 8 pairs do not fit
    expect(planned('96')).toBeLessThan(planned('139'));
    const eight = run(['--preset', 'llama-8b', '--plan-only', '1']);
    expect(eight.out).toMatch(/V=128256 H=4096 I=14336 L=32 heads=32\/8 params=8\.030B/);
    // batch 1 reads the fp32 weights once: 8.03e9 params x 4 bytes, a little less (the embedding is gathered).
    const gb = Number(/decode step, batch 1, ctx 512: .* reads ([\d.]+) GB/.exec(eight.out)![1]);
    expect(gb).toBeGreaterThan(4 * (8.03e9 - 128256 * 4096) / 1e9);
    expect(gb).toBeLessThan(4 * 8.03e9 / 1e9);
  });

  it('plans bf16 (--precision bf16): bf16 weights and KV cache, fp32 master weights, gradients and optimizer state', () => {
    const fp32 = run(['--preset', 'mistral-7b', '--plan-only', '1', '--memory-gib', '139']);
    const bf16 = run(['--preset', 'mistral-7b', '--plan-only', '1', '--memory-gib', '139', '--precision', 'bf16']);
    expect(bf16.status, bf16.err).toBe(0);
    expect(bf16.out).toMatch(/params=7\.242B, bf16; planned against 139\.0 GiB/);
    // "plan training  103.89 GiB: weights 13.49 rope table 0.00 master weights 26.98 ...": an item's
    // name follows the colon or the previous item's figure.
    const item = (out: string, name: string) => Number(new RegExp(`plan training [^\\n]*?(?<=: |\\d )${name} ([\\d.]+)`).exec(out)?.[1]);
    const n = 7.242e9 / 2 ** 30;
    expect(item(bf16.out, 'weights')).toBeCloseTo(2 * n, 1);
    expect(item(bf16.out, 'master weights')).toBeCloseTo(4 * n, 1);
    expect(item(bf16.out, 'gradients')).toBeCloseTo(4 * n, 1);
    expect(item(fp32.out, 'weights')).toBeCloseTo(4 * n, 1);
    expect(fp32.out).not.toMatch(/master weights/);
    // The decode step of llama-8b reads half the bytes in bf16.
    const reads = (out: string) => Number(/decode step, batch 1, ctx 512: .* reads ([\d.]+) GB/.exec(out)![1]);
    const e32 = run(['--preset', 'llama-8b', '--plan-only', '1']), e16 = run(['--preset', 'llama-8b', '--plan-only', '1', '--precision', 'bf16']);
    expect(reads(e16.out)).toBeCloseTo(reads(e32.out) / 2, 1);
    // Timing the CPU's bf16 emulation is refused: it is a parity check, not a fast path.
    const cpu = run(['--layers', '1', '--hidden', '64', '--vocab', '300', '--precision', 'bf16']);
    expect(cpu.status).toBe(1);
    expect(cpu.err).toMatch(/--precision bf16 on the CPU is an emulation/);
    expect(run(['--precision', 'fp16']).err).toMatch(/--precision must be fp32 or bf16 \(got 'fp16'\)/);
  });

  it.skipIf(cudaAvailable())('refuses --device cuda with the reason where no GPU is visible (skipped: a GPU is visible)', () => {
    const r = run(['--device', 'cuda', '--preset', 'llama-1b']);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/^bench_model: (device 'cuda' is not available: .+|--device cuda: this build has no CUDA backend)/);
  });

  it('names the flag of a bad option', () => {
    expect(run(['--preset', 'huge']).err).toMatch(/--preset must be llama-1b, mistral-7b or llama-8b \(got 'huge'\)/);
    expect(run(['--optimizer', 'sgd']).err).toMatch(/--optimizer must be rmsprop or adamw/);
    expect(run(['--device', 'tpu']).err).toMatch(/--device must be cpu or cuda/);
    expect(run(['--batch', '0']).err).toMatch(/--batch needs an integer >= 1 \(got '0'\)/);
    expect(run(['--bogus', '1']).err).toMatch(/unknown option --bogus/);
    expect(run(['--decode-batches', ',']).err).toMatch(/--decode-batches needs a list/);
    expect(run(['--only', 'decode']).err).toMatch(/--only: 'decode' is not a phase on cpu \(train, logprobs, generate, prefill\)/);
  });
});

describe('compare-model', () => {
  const rnd = () => 1 + Math.random();
  const native = (tps: number[]) => ({
    source: 'native', preset: 'llama-1b', precision: 'fp32', hidden: 2048, layers: 22, deviceName: 'card', copyBandwidthGBs: 4000, matmulTflops: 50, matmulCompute: '32F',
    results: [
      { name: 'train', label: 'train step', pairs: 8, seq: 1024, ms: 1, tokensPerSecond: tps[0], peakBytes: 2 ** 30, floorMs: 0.5, xFloor: 2 },
      { name: 'rollout', label: 'rollout', ms: 1, tokensPerSecond: tps[1], peakBytes: 2 ** 30, floorMs: 0.5, xFloor: 2 },
    ],
  });
  it('gives our speedup over each PyTorch variant of the same preset, and against the issue figures', () => {
    const ourTrain = 40e3 * rnd(), ourRoll = 20e3 * rnd();
    const theirs = { fp32: 10e3 * rnd(), bf16: 30e3 * rnd(), roll: 600 * rnd() };
    const torch = {
      source: 'pytorch', preset: 'llama-1b', hidden: 2048, layers: 22, torch: '2.x', transformers: '5.x', deviceName: 'card',
      results: [
        { name: 'train', variant: 'eager-fp32', pairs: 8, seq: 1024, tokensPerSecond: theirs.fp32 },
        { name: 'train', variant: 'eager-bf16', pairs: 4, seq: 1024, tokensPerSecond: theirs.bf16 },
        { name: 'train', variant: 'compile-bf16', error: 'did not finish within --compile-timeout 1 s' },
        { name: 'rollout', variant: 'eager-bf16', tokensPerSecond: theirs.roll },
      ],
    };
    const other = { ...torch, preset: 'mistral-7b', hidden: 4096, layers: 32, results: [{ name: 'train', variant: 'eager-fp32', pairs: 8, seq: 1024, tokensPerSecond: 1 }] };
    const cmp = compareModel([native([ourTrain, ourRoll]), torch, other]);
    const [train, roll] = cmp.rows;
    expect(train.pytorch['eager-fp32']).toMatchObject({ speedup: ourTrain / theirs.fp32, sameShape: true });
    expect(train.pytorch['eager-bf16']).toMatchObject({ speedup: ourTrain / theirs.bf16, sameShape: false });
    expect(train.pytorch['compile-bf16'].error).toMatch(/compile-timeout/);
    expect(train.vsIssueFigures['HF eager autocast']).toBeCloseTo(ourTrain / 47.6e3, 12);
    expect(train.meetsTarget).toBe(ourTrain >= 75e3);
    expect(roll.pytorch['eager-bf16'].speedup).toBeCloseTo(ourRoll / theirs.roll, 12);
    expect(roll.meetsTarget).toBe(ourRoll >= 17.5e3);
    const text = formatModelTable(cmp);
    expect(text).toMatch(/eager-bf16 .* other shape/);
    expect(text).toMatch(/compile-bf16 did not finish/);
    expect(text).toMatch(/sppo-native ran fp32: the like-for-like ratio is eager-fp32 for fp32 rows/);
    const b16 = formatModelTable(compareModel([{ ...native([ourTrain, ourRoll]), precision: 'bf16' }, torch]));
    expect(b16).toMatch(/llama-1b \(bf16\) on card: copy 4000 GB\/s, bf16 matmul 50\.0 TFLOP\/s/);
    expect(b16).toMatch(/sppo-native ran bf16/);
  });
  it('says so when there is no baseline', () => {
    const cmp = compareModel([native([1e3, 1e3])]);
    expect(cmp.rows[0].pytorch).toEqual({});
    expect(formatModelTable(cmp)).toMatch(/no PyTorch baseline/);
  });
});
