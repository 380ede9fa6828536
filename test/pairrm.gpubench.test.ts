// The PairRM benchmark's plumbing (not its speed): build/bench/bench_pairrm's CPU run writes a JSON
// report whose derived columns agree with its raw ones and whose FLOPs agree with a count made here
// matrix product by matrix product; the judge's call limits are applied; --plan-only plans bf16
// (half the fp32 weight bytes) without a GPU; --device cuda is refused with the engine's reason
// where no GPU is visible; the CPU's bf16 emulation is refused as a timing target; bad flags are
// named; and bench/compare-pairrm.mjs computes its ratios from the reports it is given.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaAvailable } from '../src/native/addon.js';
import { runPairRmBench } from '../src/bench/pairrm.js';
// @ts-expect-error: a plain ES module of the bench scripts, without types
import { ANCHOR, anchorRatios, comparePairRm, formatPairRmTable } from '../bench/compare-pairrm.mjs';

const exe = join(process.cwd(), 'build', 'bench', 'bench_pairrm');
const built = existsSync(exe);
const dir = mkdtempSync(join(tmpdir(), 'sppo-pairrm-gpubench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(exe, args, { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

// FLOPs of `pairs` pairs of L tokens in calls of `perCall`, counted product by product (2 per
// multiply-add): per layer and pair q, k, v, out [H x H], the FFN's [H x I] and [I x H]; per head
// q.k and p.v (L x L x hd) and the two relative terms against the P projected rows (L x P x hd);
// per layer and call the P relative rows through the query and the key projections; per pair the
// head twice ([2H] -> H -> 1).
function countFlops(c: { layers: number; H: number; I: number; heads: number }, L: number, P: number, pairs: number, perCall: number): number {
  const hd = c.H / c.heads;
  const mm = (m: number, n: number, k: number) => 2 * m * n * k;
  let perPair = 0;
  for (let l = 0; l < c.layers; l++) {
    for (const _ of ['q', 'k', 'v', 'out']) perPair += mm(L, c.H, c.H);
    perPair += mm(L, c.I, c.H) + mm(L, c.H, c.I);
    for (let h = 0; h < c.heads; h++) perPair += mm(L, L, hd) + mm(L, hd, L) + mm(L, P, hd) + mm(L, P, hd);
  }
  perPair += 2 * (mm(1, c.H, 2 * c.H) + mm(1, 1, c.H));
  const perCallProj = c.layers * 2 * mm(P, c.H, c.H);
  return pairs * perPair + Math.ceil(pairs / perCall) * perCallProj;
}

const tiny = ['--layers', '2', '--hidden', '64', '--heads', '4', '--ffn', '128', '--vocab', '300'];
const tinyShape = { layers: 2, H: 64, I: 128, heads: 4 };

describe.skipIf(!built)('bench_pairrm executable (skipped: build/bench/bench_pairrm is not built)', () => {
  it('runs a tiny PairRM on the CPU and writes a consistent JSON report', () => {
    const json = join(dir, 'cpu.json');
    const r = run([...tiny, '--source', '8', '--candidate', '16', '--batch', '3', '--repeat', '2', '--json', json]);
    expect(r.status, r.err).toBe(0);
    // The CPU output as it was, plus the floor.
    expect(r.out).toMatch(/K = 5, 1 prompt\(s\): 20 ordered pairs of 49 tokens \(source 8, candidates 16\), 3 pairs per call/);
    expect(r.out).toMatch(/pairs\/s, \d+ tokens\/s, [\d.]+ GFLOP\/s/);
    expect(r.out).toMatch(/floor [\d.]+ s \(the FLOPs at the CPU backend's matmul rate measured here/);
    const rep = JSON.parse(readFileSync(json, 'utf8'));
    expect(rep).toMatchObject({ suite: 'pairrm', source: 'native', device: 'cpu', precision: 'fp32', k: 5, prompts: 1, layers: 2, hidden: 64, heads: 4, ffn: 128, vocab: 300 });
    expect(rep.deviceName).toMatch(/^CPU \(\d+ threads\)$/);
    expect(rep.matmulTflops).toBeGreaterThan(0);
    expect(rep.results).toHaveLength(1);
    const x = rep.results[0];
    expect(x).toMatchObject({ name: 'batched', pairs: 20, tokensPerPair: 8 + 2 * 16 + 9, pairsPerCall: 3, calls: 7, repeat: 2, tokens: 20 * 49 });
    // L = 49 <= 128 (half the 256 buckets): every offset has its own row, 2L - 1 of them.
    expect(x.relRows).toBe(2 * 49 - 1);
    expect(rel(x.flops, countFlops(tinyShape, 49, 97, 20, 3))).toBeLessThan(1e-9);
    expect(rel(x.seconds, x.ms / 1e3)).toBeLessThan(1e-6);
    expect(rel(x.pairsPerSecond, x.pairs / x.seconds)).toBeLessThan(1e-6);
    expect(rel(x.tokensPerSecond, x.tokens / x.seconds)).toBeLessThan(1e-6);
    expect(rel(x.tflops, x.flops / x.seconds / 1e12)).toBeLessThan(1e-6);
    expect(rel(x.floorMs, x.flops / (rep.matmulTflops * 1e9))).toBeLessThan(1e-6);
    expect(rel(x.xFloor, x.ms / x.floorMs)).toBeLessThan(1e-6);
    expect(x.peakBytes).toBeGreaterThan(0);
    expect(x.cpuSeconds).toBeGreaterThan(0);
    // The anchor, written by the executable, against compare-pairrm's own arithmetic.
    expect(rep.anchor).toMatchObject({ prompts: 20800, pairsPerPrompt: 20, flops: 5e17, tflops: 300, targetRatio: 1.5 });
    expect(rel(rep.anchor.seconds, 5e17 / 300e12)).toBeLessThan(1e-6);
    const a = anchorRatios(x.pairsPerSecond, x.tflops);
    expect(rel(x.anchorRatioByPairs, a.byPairs)).toBeLessThan(1e-6);
    expect(rel(x.anchorRatioByFlops, a.byFlops)).toBeLessThan(1e-6);
    expect(rel(x.anchorSecondsByPairs, 416000 / x.pairsPerSecond)).toBeLessThan(1e-6);
    expect(rep.derived).toMatchObject({ row: 'batched', tokensPerPair: 49, meetsTargetByPairs: a.meetsByPairs, meetsTargetByFlops: a.meetsByFlops });
    expect(rel(rep.derived.ratioByFlops, x.anchorRatioByFlops)).toBeLessThan(1e-6);
  });

  it("cuts pairs into calls under the judge's token budget, and counts a long pair's relative rows", () => {
    const json = join(dir, 'budget.json');
    // 100 tokens a call: two 49-token pairs; 8 buckets (max distance 16): a 49-token pair reaches all 2 x 8 rows.
    const r = run([...tiny, '--buckets', '8', '--source', '8', '--candidate', '16', '--batch', '8', '--tokens', '100', '--json', json]);
    expect(r.status, r.err).toBe(0);
    const x = JSON.parse(readFileSync(json, 'utf8')).results[0];
    expect(x).toMatchObject({ pairsPerCall: 2, calls: 10, tokenBudget: 100, relRows: 16 });
    expect(rel(x.flops, countFlops(tinyShape, 49, 16, 20, 2))).toBeLessThan(1e-9);
    // A pair longer than the budget goes alone; one pair a call is the single (llm-blender) row.
    const one = join(dir, 'one.json');
    expect(run([...tiny, '--source', '8', '--candidate', '16', '--batch', '8', '--tokens', '10', '--json', one]).status).toBe(0);
    expect(JSON.parse(readFileSync(one, 'utf8')).results[0]).toMatchObject({ pairsPerCall: 1, calls: 20 });
    const single = join(dir, 'single.json');
    expect(run([...tiny, '--source', '8', '--candidate', '16', '--batch', '1', '--json', single]).status).toBe(0);
    expect(JSON.parse(readFileSync(single, 'utf8')).results[0]).toMatchObject({ name: 'single', pairsPerCall: 1 });
  });

  it('plans the CUDA rows without a GPU, bf16 and fp16 at half the fp32 weight bytes', () => {
    const plan = (extra: string[]) => run(['--plan-only', '1', '--device', 'cuda', ...extra]);
    const f32 = plan([]), b16 = plan(['--precision', 'bf16']), f16 = plan(['--precision', 'fp16']);
    expect(f32.status, f32.err).toBe(0);
    expect(b16.status, b16.err).toBe(0);
    expect(f16.status, f16.err).toBe(0);
    expect(f32.out).toMatch(/single: 80 pairs x 649 tok, 1\/call/);
    expect(f32.out).toMatch(/batched: 80 pairs x 649 tok, 16\/call/);
    // 16384 tokens a call hold 7 pairs of 1224 + 2 x 412 + 9 = 2057 tokens.
    expect(f32.out).toMatch(/anchor: 20 pairs x 2057 tok, 7\/call/);
    const weights = (out: string) => Number(/weights ([\d.]+) GiB/.exec(out)![1]);
    // PairRM's parameters: the embedding, 24 layers, the relative embeddings and the head.
    const H = 1024, I = 4096, V = 128005;
    const params = V * H + 2 * H + 24 * (4 * (H * H + H) + 2 * H + 2 * I * H + I + H + 2 * H) + 512 * H + 2 * H + (2 * H * H + H) + (H + 1);
    expect(weights(f32.out)).toBeCloseTo((4 * params) / 2 ** 30, 2);
    expect(weights(b16.out)).toBeCloseTo((2 * params) / 2 ** 30, 2);
    expect(b16.out).toMatch(/PairRM bf16 plans/);
    expect(weights(f16.out)).toBeCloseTo((2 * params) / 2 ** 30, 2);
    expect(f16.out).toMatch(/PairRM fp16 plans/);
    // The anchor row's FLOPs a pair, against the count here (P: all 512 rows at 2057 tokens).
    const flopsPerPair = Number(/anchor: .* ([\d.e+]+) FLOP per pair/.exec(f32.out)![1]);
    expect(rel(flopsPerPair, countFlops({ layers: 24, H, I, heads: 16 }, 2057, 512, 20, 7) / 20)).toBeLessThan(1e-3);
  });

  it('refuses to time the CPU bf16 emulation, and names the flag of a bad option', () => {
    const b = run([...tiny, '--precision', 'bf16']);
    expect(b.status).toBe(1);
    expect(b.err).toMatch(/--precision bf16 on the CPU is an emulation .* use --device cuda, or --plan-only 1/);
    const h = run([...tiny, '--precision', 'fp16']);
    expect(h.status).toBe(1);
    expect(h.err).toMatch(/--precision fp16 on the CPU is an emulation \(fp16 storage/);
    const bad: Array<[string[], RegExp]> = [
      [['--precision', 'fp8'], /--precision must be fp32, bf16 or fp16 \(got 'fp8'\)/],
      [['--device', 'tpu'], /--device must be cpu or cuda \(got 'tpu'\)/],
      [['--k', '1'], /--k needs an integer >= 2 \(got '1'\)/],
      [['--batch', '0'], /--batch needs an integer >= 1 \(got '0'\)/],
      [['--tokens', 'x'], /--tokens needs an integer >= 0 \(got 'x'\)/],
      [['--bogus', '1'], /unknown option --bogus/],
      [['--rows', 'single'], /--rows chooses the CUDA rows/],
      [['--device', 'cuda', '--rows', 'double'], /--rows: 'double' is not a row \(single, batched, anchor\)/],
      [['--hidden', '100'], /--hidden \(100\) must be a multiple of --heads \(16\)/],
      [['--json'], /--json needs a value/],
    ];
    for (const [args, msg] of bad) {
      const r = run(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.err).toMatch(msg);
    }
  });

  it.skipIf(cudaAvailable())('refuses --device cuda with the reason where no GPU is visible (skipped: a GPU is visible)', () => {
    const r = run(['--device', 'cuda']);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/^bench_pairrm: (device 'cuda' is not available: .+|--device cuda: this build has no CUDA backend)/);
  });
});

describe('sppo-native bench pairrm (the TS suite)', () => {
  it.skipIf(cudaAvailable())("refuses --device cuda with the engine's reason where no GPU is visible (skipped: a GPU is visible)", async () => {
    await expect(runPairRmBench({ device: 'cuda', size: 'tiny', log: () => {} })).rejects.toThrow(/^device 'cuda' is not available: /);
  });
  it('refuses bf16 and fp16 on the CPU', async () => {
    await expect(runPairRmBench({ device: 'cpu', precision: 'bf16', size: 'tiny', log: () => {} })).rejects.toThrow(/bf16 on the CPU is an emulation/);
    await expect(runPairRmBench({ device: 'cpu', precision: 'fp16', size: 'tiny', log: () => {} })).rejects.toThrow(/fp16 on the CPU is an emulation/);
  });
});

describe('compare-pairrm', () => {
  const rnd = () => 1 + Math.random();
  const nativeRow = (name: string, pairsPerCall: number, tokensPerPair: number, pps: number, flopsPerPair: number) => ({
    name, label: `${name} row`, pairsPerCall, tokensPerPair, pairsPerSecond: pps, flopsPerPair, tflops: (pps * flopsPerPair) / 1e12,
    ms: 1, floorMs: 0.5, xFloor: 2, peakBytes: 2 ** 30,
  });
  const torch = (mode: string, pairsPerCall: number, tokensPerPair: number, pps: number) => ({
    suite: 'pairrm', source: 'pytorch', torch: '2.x', transformers: '4.x', device: 'card', dtype: 'fp16', mode, pairsPerCall, tokensPerPair,
    pairsPerSecond: pps,
  });

  it('gives the anchor ratios of a rate', () => {
    // 416k pairs at 416000 / 1666.67 pairs/s take exactly the anchor's time; 300 TFLOP/s is the anchor's rate.
    const x = anchorRatios(416000 / (5e17 / 300e12), 300);
    expect(x.byPairs).toBeCloseTo(1, 12);
    expect(x.byFlops).toBeCloseTo(1, 12);
    const slow = anchorRatios(100 * rnd(), 150);
    expect(slow.byFlops).toBeCloseTo(2, 12);
    expect(slow.meetsByFlops).toBe(false);
    expect(anchorRatios(1e6, 250).meetsByFlops).toBe(true);  // 1.2x
    expect(ANCHOR.targetRatio).toBe(1.5);
  });

  it('gives our speedup over PyTorch for the same mode and pair length only', () => {
    const f = 4.7e11 * rnd(), fa = 1.77e12 * rnd();
    const ours = { single: 50 * rnd(), batched: 400 * rnd(), anchor: 90 * rnd() };
    const theirs = { single: 20 * rnd(), batched: 300 * rnd(), anchor: 60 * rnd() };
    const native = {
      suite: 'pairrm', source: 'native', deviceName: 'card', precision: 'bf16', matmulTflops: 600, matmulCompute: '32F',
      results: [nativeRow('single', 1, 649, ours.single, f), nativeRow('batched', 16, 649, ours.batched, f), nativeRow('anchor', 7, 2057, ours.anchor, fa)],
    };
    const cmp = comparePairRm([native, torch('single', 1, 649, theirs.single), torch('batched', 20, 649, theirs.batched),
      torch('batched', 7, 2057, theirs.anchor), torch('batched', 16, 300, 1e9), { suite: 'model', source: 'pytorch', results: [] }]);
    const [single, batched, anchor] = cmp.rows;
    expect(single.mode).toBe('single');
    expect(single.pytorch).toHaveLength(1);
    expect(single.pytorch[0].speedup).toBeCloseTo(ours.single / theirs.single, 12);
    expect(single.pytorch[0].sameBatch).toBe(true);
    // The 300-token baseline is another pair length: not a ratio.
    expect(batched.pytorch).toHaveLength(1);
    expect(batched.pytorch[0]).toMatchObject({ sameBatch: false, pairsPerCall: 20 });
    expect(batched.pytorch[0].speedup).toBeCloseTo(ours.batched / theirs.batched, 12);
    expect(batched.pytorch[0].tflops).toBeCloseTo((theirs.batched * f) / 1e12, 9);
    expect(anchor.pytorch[0].speedup).toBeCloseTo(ours.anchor / theirs.anchor, 12);
    expect(anchor.anchor.byPairs).toBeCloseTo(416000 / ours.anchor / (5e17 / 300e12), 9);
    expect(anchor.anchor.byFlops).toBeCloseTo(5e17 / (ours.anchor * fa) / (5e17 / 300e12), 9);
    expect(anchor.xFloor).toBe(2);
    const text = formatPairRmTable(cmp);
    expect(text).toMatch(/sppo-native PairRM \(bf16\) on card: bf16 matmul 600\.0 TFLOP\/s/);
    expect(text).toMatch(/they 20\/forward/);
    expect(text).toMatch(/target <= 1\.5x/);
  });

  it('says so when there is no baseline', () => {
    const native = { suite: 'pairrm', source: 'native', deviceName: 'card', precision: 'fp32', results: [nativeRow('batched', 16, 649, 10, 1e12)] };
    const cmp = comparePairRm([native]);
    expect(cmp.rows[0].pytorch).toEqual([]);
    expect(formatPairRmTable(cmp)).toMatch(/no PyTorch baseline/);
  });
});
