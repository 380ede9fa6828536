// Eval statistics: the Wilson interval against its closed form and published values, its coverage
// on simulated evaluations, ties and probabilities, the bootstrap, and input errors.
import { describe, expect, it } from 'vitest';
import { formatWinRate, normalQuantile, outcomeFromMatrix, wilsonInterval, winRate, winRateBootstrap } from '../src/eval/stats.js';
import { matrixFromScores } from '../src/judge/matrix.js';
import { seededRandom } from './sppo.seed.js';

describe('win rate with a confidence interval', () => {
  it('normal quantiles match known values', () => {
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963984540054, 8);
    expect(normalQuantile(0.995)).toBeCloseTo(2.5758293035489, 8);
    expect(normalQuantile(0.5)).toBe(0);
    expect(normalQuantile(0.001)).toBeCloseTo(-3.090232306167813, 8);
  });

  it('matches the Wilson interval of 8 wins in 10 (0.490, 0.943 at 95%) and its closed form', () => {
    const w = winRate([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    expect(w).toMatchObject({ n: 10, wins: 8, losses: 2, ties: 0, winRate: 0.8, method: 'wilson', confidence: 0.95 });
    expect(w.lower).toBeCloseTo(0.4902, 4);
    expect(w.upper).toBeCloseTo(0.9433, 4);
    const { rand } = seededRandom('wilson closed form');
    for (let t = 0; t < 50; t++) {
      const n = 1 + Math.floor(rand() * 500);
      const k = Math.floor(rand() * (n + 1));
      const z = 1.959963984540054;
      const p = k / n;
      const centre = (k + (z * z) / 2) / (n + z * z);
      const half = ((z * Math.sqrt(n)) / (n + z * z)) * Math.sqrt(p * (1 - p) + (z * z) / (4 * n));
      const [lo, hi] = wilsonInterval(p, n);
      expect(lo).toBeCloseTo(Math.max(0, centre - half), 8);
      expect(hi).toBeCloseTo(Math.min(1, centre + half), 8);
    }
  });

  it('covers the true win rate about 95% of the time', () => {
    const { rand } = seededRandom('wilson coverage');
    let covered = 0;
    const trials = 2000;
    for (let t = 0; t < trials; t++) {
      const truth = 0.05 + 0.9 * rand();
      const outcomes = Array.from({ length: 60 }, () => (rand() < truth ? 1 : 0));
      const w = winRate(outcomes);
      if (w.lower <= truth && truth <= w.upper) covered++;
    }
    // Binomial sd of the coverage estimate is ~0.005; Wilson's actual coverage is close to nominal.
    expect(covered / trials).toBeGreaterThan(0.92);
    expect(covered / trials).toBeLessThan(0.98);
  });

  it('counts ties as half, accepts probabilities, and agrees with a seeded bootstrap', () => {
    const w = winRate([1, 0.5, 0.5, 0, 1, 1]);
    expect(w).toMatchObject({ wins: 3, ties: 2, losses: 1, winRate: 4 / 6 });
    const { rand } = seededRandom('bootstrap');
    const outcomes = Array.from({ length: 400 }, () => (rand() < 0.7 ? 1 : rand() < 0.5 ? 0.5 : 0));
    const a = winRate(outcomes);
    const b = winRateBootstrap(outcomes, 0.95, 2000, 42);
    expect(b.method).toBe('bootstrap');
    expect(b.winRate).toBe(a.winRate);
    expect(Math.abs(b.lower - a.lower)).toBeLessThan(0.02);
    expect(Math.abs(b.upper - a.upper)).toBeLessThan(0.02);
    expect(winRateBootstrap(outcomes, 0.95, 2000, 42)).toEqual(b); // reproducible
    expect(formatWinRate(a)).toMatch(/^\d+\.\d% \[\d+\.\d%, \d+\.\d%\] \(95% wilson; \d+ wins?, \d+ ties?, \d+ loss(es)? of 400\)$/);
  });

  it('reads a comparison from a judge matrix', () => {
    expect(outcomeFromMatrix(matrixFromScores([2, 1]))).toBe(1);
    expect(outcomeFromMatrix(matrixFromScores([1, 2]))).toBe(0);
    expect(outcomeFromMatrix(matrixFromScores([1, 1]))).toBe(0.5);
    expect(outcomeFromMatrix(matrixFromScores([1, 0]), 'soft')).toBeCloseTo(0.7310585786300049, 15);
    expect(() => outcomeFromMatrix(matrixFromScores([1, 0, 2]))).toThrow(/needs the 2 x 2 preference matrix/);
  });

  it('refuses empty or invalid comparisons', () => {
    expect(() => winRate([])).toThrow(/win rate: no comparisons/);
    expect(() => winRate([1, 2])).toThrow(/win rate: comparison 1 is 2, expected a number in \[0, 1\]/);
    expect(() => winRate([1, NaN])).toThrow(/comparison 1 is NaN/);
    expect(() => winRate([1], 1)).toThrow(/confidence must be in \(0, 1\)/);
    expect(() => winRateBootstrap([1], 0.95, 10)).toThrow(/resamples must be an integer >= 100/);
  });
});
