// Eval intervals with several samples per prompt: comparisons of one prompt are correlated, so the
// interval must account for the prompt (cluster). Simulated evaluations with a known truth and a
// known intra-prompt correlation (a logged seed), the closed form of the cluster-robust variance,
// and the one-sample-per-prompt case, which must stay plain Wilson.
import { describe, expect, it } from 'vitest';
import { designEffect, formatWinRate, winRate, winRateBootstrap, winRateByPrompt, wilsonInterval } from '../src/eval/stats.js';
import { seededRandom } from './sppo.seed.js';

/**
 * G prompts x m samples. Each prompt is, with probability `rho`, "decided" (all its samples share
 * one Bernoulli(mu) draw) and otherwise gives m independent Bernoulli(mu) draws: every outcome is
 * Bernoulli(mu), the intra-prompt correlation is exactly rho, and the design effect of the mean is
 * 1 + (m - 1) rho.
 */
function simulate(rand: () => number, g: number, m: number, mu: number, rho: number): { outcomes: number[]; clusters: number[] } {
  const outcomes: number[] = [];
  const clusters: number[] = [];
  for (let c = 0; c < g; c++) {
    const decided = rand() < rho ? (rand() < mu ? 1 : 0) : null;
    for (let s = 0; s < m; s++) {
      outcomes.push(decided ?? (rand() < mu ? 1 : 0));
      clusters.push(c);
    }
  }
  return { outcomes, clusters };
}

const covers = (w: { lower: number; upper: number }, truth: number) => w.lower <= truth && truth <= w.upper;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('win rate with several samples per prompt', () => {
  it('one sample per prompt is plain Wilson, whatever the prompt ids', () => {
    const { rand } = seededRandom('eval clusters: singletons');
    for (let t = 0; t < 20; t++) {
      const n = 1 + Math.floor(rand() * 200);
      const outcomes = Array.from({ length: n }, () => [0, 0.5, 1, rand()][Math.floor(rand() * 4)]!);
      const ids = Array.from({ length: n }, (_, i) => `prompt ${i}`);
      const plain = winRate(outcomes);
      const w = winRate(outcomes, 0.95, ids);
      expect(w).toEqual(plain);
      expect(w.method).toBe('wilson');
      expect(w.designEffect).toBe(1);
      expect(winRateByPrompt(outcomes.map((o) => [o]))).toEqual(plain);
      const [lo, hi] = wilsonInterval(plain.winRate, n);
      expect([plain.lower, plain.upper]).toEqual([lo, hi]);
    }
  });

  it('with equal prompt sizes the interval is Wilson at n / deff, deff = (sample variance of prompt means / G) / (s^2 / n)', () => {
    const { rand } = seededRandom('eval clusters: closed form');
    for (let t = 0; t < 30; t++) {
      const g = 2 + Math.floor(rand() * 60);
      const m = 2 + Math.floor(rand() * 6);
      const { outcomes, clusters } = simulate(rand, g, m, 0.2 + 0.6 * rand(), rand());
      // Soften some outcomes into ties and judge probabilities: the formula is for any [0, 1] outcome.
      for (let i = 0; i < outcomes.length; i++) if (rand() < 0.2) outcomes[i] = rand();
      // Shuffle the order: clusters are identified by key, not by position.
      const order = outcomes.map((_, i) => i).sort(() => rand() - 0.5);
      const o = order.map((i) => outcomes[i]!);
      const c = order.map((i) => clusters[i]!);
      const n = g * m;
      const mean = o.reduce((a, b) => a + b, 0) / n;
      const s2 = o.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
      const means = Array.from({ length: g }, (_, k) => outcomes.slice(k * m, (k + 1) * m).reduce((a, b) => a + b, 0) / m);
      const varMeans = means.reduce((a, b) => a + (b - mean) ** 2, 0) / (g - 1);
      const deffRef = s2 > 0 ? Math.max(1, varMeans / g / (s2 / n)) : m;
      const w = winRate(o, 0.9, c);
      expect(w.method).toBe('cluster-wilson');
      expect(w.clusters).toBe(g);
      expect(w.designEffect!).toBeCloseTo(deffRef, 9);
      expect(designEffect(o, c)).toBeCloseTo(deffRef, 9);
      const [lo, hi] = wilsonInterval(mean, n / deffRef, 0.9);
      expect(w.lower).toBeCloseTo(lo, 9);
      expect(w.upper).toBeCloseTo(hi, 9);
      expect(w.winRate).toBeCloseTo(mean, 12);
      // Never narrower than the interval that treats the comparisons as independent.
      const plain = winRate(o, 0.9);
      expect(w.lower).toBeLessThanOrEqual(plain.lower + 1e-12);
      expect(w.upper).toBeGreaterThanOrEqual(plain.upper - 1e-12);
    }
  });

  it('strongly correlated samples (G = 40 prompts x 8, intra-prompt correlation 0.5, deff 4.5): the interval widens ~sqrt(4.5) and covers ~95%, where independent Wilson covers ~65%', () => {
    const { rand } = seededRandom('eval clusters: coverage');
    const reps = 1000;
    const g = 40, m = 8, rho = 0.5;
    let coveredPlain = 0, coveredCluster = 0;
    const widthRatio: number[] = [];
    for (let r = 0; r < reps; r++) {
      const mu = 0.3 + 0.5 * rand();
      const { outcomes, clusters } = simulate(rand, g, m, mu, rho);
      const plain = winRate(outcomes);
      const w = winRate(outcomes, 0.95, clusters);
      if (covers(plain, mu)) coveredPlain++;
      if (covers(w, mu)) coveredCluster++;
      widthRatio.push((w.upper - w.lower) / (plain.upper - plain.lower));
    }
    console.log(`[eval clusters: coverage] independent Wilson ${coveredPlain / reps}, clustered ${coveredCluster / reps}, median width ratio ${median(widthRatio).toFixed(3)}`);
    // Binomial sd of a coverage estimate over 1000 repetitions is ~0.007 at 95%.
    expect(coveredPlain / reps).toBeLessThan(0.8);
    expect(coveredCluster / reps).toBeGreaterThan(0.91);
    expect(coveredCluster / reps).toBeLessThan(0.98);
    expect(median(widthRatio)).toBeGreaterThan(Math.sqrt(1 + (m - 1) * rho) * 0.85);
    expect(median(widthRatio)).toBeLessThan(Math.sqrt(1 + (m - 1) * rho) * 1.15);
  });

  it('independent samples under prompt ids: the design effect stays near 1 and coverage near 95%', () => {
    const { rand } = seededRandom('eval clusters: independent');
    const reps = 600;
    let covered = 0;
    const deffs: number[] = [];
    for (let r = 0; r < reps; r++) {
      const mu = 0.3 + 0.5 * rand();
      const { outcomes, clusters } = simulate(rand, 40, 8, mu, 0);
      const w = winRate(outcomes, 0.95, clusters);
      if (covers(w, mu)) covered++;
      deffs.push(w.designEffect!);
    }
    expect(covered / reps).toBeGreaterThan(0.92);
    expect(median(deffs)).toBeLessThan(1.25);
  });

  it('the prompt bootstrap resamples prompts: it widens like the design effect and covers the truth', () => {
    const { rand } = seededRandom('eval clusters: bootstrap');
    const reps = 300;
    let covered = 0, coveredSingle = 0;
    for (let r = 0; r < reps; r++) {
      const mu = 0.3 + 0.5 * rand();
      const { outcomes, clusters } = simulate(rand, 40, 8, mu, 0.5);
      const seed = Math.floor(rand() * 2 ** 31);
      const b = winRateBootstrap(outcomes, 0.95, 500, seed, clusters);
      const single = winRateBootstrap(outcomes, 0.95, 500, seed);
      expect(b.method).toBe('cluster-bootstrap');
      expect(b.clusters).toBe(40);
      if (covers(b, mu)) covered++;
      if (covers(single, mu)) coveredSingle++;
    }
    console.log(`[eval clusters: bootstrap] prompt bootstrap ${covered / reps}, single-outcome bootstrap ${coveredSingle / reps}`);
    // sd ~0.013 at 95% over 300 repetitions; the percentile bootstrap runs a little under nominal at G = 40.
    expect(covered / reps).toBeGreaterThan(0.87);
    expect(coveredSingle / reps).toBeLessThan(0.8);
    const { outcomes, clusters } = simulate(rand, 30, 5, 0.6, 0.3);
    expect(winRateBootstrap(outcomes, 0.95, 400, 7, clusters)).toEqual(winRateBootstrap(outcomes, 0.95, 400, 7, clusters));
  });

  it('groups by prompt id, not position; one prompt counts once; bad ids are named', () => {
    const w = winRateByPrompt([[1, 1, 1], [0, 0, 0], [1, 1, 1], [1, 1, 1]]);
    // Perfectly correlated: 12 comparisons carry the information of 4 prompts.
    expect(w).toMatchObject({ n: 12, clusters: 4, method: 'cluster-wilson', winRate: 0.75 });
    const [lo, hi] = wilsonInterval(0.75, 12 / w.designEffect!);
    expect([w.lower, w.upper]).toEqual([lo, hi]);
    // Residuals S_c - 3 mu: 0.75 (three prompts), -2.25 (one); s^2 = 12 (0.75 * 0.25) / 11.
    expect(w.designEffect).toBeCloseTo(((4 / 3) * (3 * 0.75 ** 2 + 2.25 ** 2)) / 144 / ((12 * 0.75 * 0.25) / 11 / 12), 9);
    expect(formatWinRate(w)).toMatch(/^75\.0% \[\d+\.\d%, \d+\.\d%\] \(95% cluster-wilson; 9 wins, 0 ties, 3 losses of 12 over 4 prompts, design effect \d+\.\d\d\)$/);
    // All comparisons equal: no variance to compare, so each prompt counts once.
    expect(winRate([1, 1, 1, 1], 0.95, ['a', 'a', 'b', 'b']).designEffect).toBe(2);
    // A single prompt is a single observation of the prompt distribution.
    const one = winRate([1, 0, 1, 1], 0.95, [3, 3, 3, 3]);
    expect(one.designEffect).toBe(4);
    expect([one.lower, one.upper]).toEqual(wilsonInterval(0.75, 1));
    expect(() => winRate([1, 0], 0.95, [1])).toThrow(/win rate: clusters has 1 entries for 2 comparisons \(one prompt id per comparison\)/);
    expect(() => winRate([1, 0], 0.95, [1, NaN])).toThrow(/win rate: clusters\[1\] is NaN, expected a prompt id/);
    expect(() => winRateByPrompt([[1], 2 as unknown as number[]])).toThrow(/win rate: perPrompt\[1\] must be an array/);
    expect(() => winRateByPrompt([[1], [3]])).toThrow(/win rate: comparison 1 is 3/);
    expect(() => winRateByPrompt([])).toThrow(/win rate: no comparisons/);
  });
});
