// Win rate of A against B from per-prompt comparisons, with a confidence interval.
//
// Each comparison is an outcome in [0, 1]: 1 = A won, 0 = B won, 0.5 = tie, or a judge's
// probability P(A > B). The win rate is their mean. The interval is Wilson's score interval
// computed with n comparisons and p^ = mean: for 0/1 outcomes it is the usual Wilson interval; ties
// and probabilities have variance at most mu(1 - mu) (any variable in [0, 1] does), so the same
// interval is, if anything, conservative for them. Wilson rather than the normal approximation
// because win rates near 0 or 1 (a good iteration) are exactly where the latter breaks down.
// A percentile bootstrap is available for comparison (seeded, so reproducible).
import { mulberry32 } from '../util/rng.js';

export interface WinRate {
  n: number;
  wins: number;      // outcomes > 0.5
  losses: number;    // outcomes < 0.5
  ties: number;      // outcomes = 0.5
  winRate: number;   // mean outcome
  lower: number;
  upper: number;
  confidence: number;
  method: 'wilson' | 'bootstrap';
}

/** Inverse standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`normalQuantile: p must be in (0, 1) (got ${p})`);
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  if (p > 1 - lo) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

/** Wilson score interval for a proportion p^ over n trials at the given two-sided confidence. */
export function wilsonInterval(pHat: number, n: number, confidence = 0.95): [number, number] {
  if (!(n > 0)) throw new Error(`wilsonInterval: n must be positive (got ${n})`);
  const z = normalQuantile(1 - (1 - confidence) / 2);
  const z2n = (z * z) / n;
  const centre = (pHat + z2n / 2) / (1 + z2n);
  const half = (z / (1 + z2n)) * Math.sqrt((pHat * (1 - pHat)) / n + z2n / (4 * n));
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

function checkOutcomes(outcomes: readonly number[], confidence: number): void {
  if (!Array.isArray(outcomes) || outcomes.length === 0) throw new Error('win rate: no comparisons (an empty evaluation set?)');
  outcomes.forEach((o, i) => {
    if (typeof o !== 'number' || !(o >= 0 && o <= 1)) throw new Error(`win rate: comparison ${i} is ${String(o)}, expected a number in [0, 1] (1 = A wins, 0.5 = tie)`);
  });
  if (!(confidence > 0 && confidence < 1)) throw new Error(`win rate: confidence must be in (0, 1) (got ${confidence})`);
}

function counts(outcomes: readonly number[]) {
  let wins = 0, losses = 0, ties = 0, sum = 0;
  for (const o of outcomes) {
    sum += o;
    if (o > 0.5) wins++;
    else if (o < 0.5) losses++;
    else ties++;
  }
  return { wins, losses, ties, mean: sum / outcomes.length };
}

/** Win rate with a Wilson interval (see the header for why it also holds for ties/probabilities). */
export function winRate(outcomes: readonly number[], confidence = 0.95): WinRate {
  checkOutcomes(outcomes, confidence);
  const c = counts(outcomes);
  const [lower, upper] = wilsonInterval(c.mean, outcomes.length, confidence);
  return { n: outcomes.length, wins: c.wins, losses: c.losses, ties: c.ties, winRate: c.mean, lower, upper, confidence, method: 'wilson' };
}

/** Win rate with a percentile bootstrap interval over prompts (mulberry32 stream from `seed`). */
export function winRateBootstrap(outcomes: readonly number[], confidence = 0.95, resamples = 2000, seed = 1): WinRate {
  checkOutcomes(outcomes, confidence);
  if (!Number.isInteger(resamples) || resamples < 100) throw new Error(`win rate: resamples must be an integer >= 100 (got ${resamples})`);
  const rand = mulberry32(seed);
  const n = outcomes.length;
  const means = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += outcomes[Math.floor(rand() * n)]!;
    means[b] = sum / n;
  }
  means.sort();
  const alpha = (1 - confidence) / 2;
  const at = (q: number) => means[Math.min(resamples - 1, Math.max(0, Math.floor(q * resamples)))]!;
  const c = counts(outcomes);
  return { n, wins: c.wins, losses: c.losses, ties: c.ties, winRate: c.mean, lower: at(alpha), upper: at(1 - alpha), confidence, method: 'bootstrap' };
}

/**
 * The outcome of one prompt's comparison from the judge's 2 x 2 matrix over [A, B]. `hard`
 * (default): 1 when P(A > B) > 1/2, 0 when below, 0.5 on an exact tie; `soft`: P(A > B) itself.
 */
export function outcomeFromMatrix(p: readonly (readonly number[])[], mode: 'hard' | 'soft' = 'hard'): number {
  const v = p[0]?.[1];
  if (p.length !== 2 || typeof v !== 'number' || !(v >= 0 && v <= 1)) {
    throw new Error('win rate: a comparison needs the 2 x 2 preference matrix of [A, B]');
  }
  if (mode === 'soft') return v;
  return v > 0.5 ? 1 : v < 0.5 ? 0 : 0.5;
}

export function formatWinRate(w: WinRate): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  return `${pct(w.winRate)} [${pct(w.lower)}, ${pct(w.upper)}] (${Math.round(100 * w.confidence)}% ${w.method}; ${w.wins} wins, ${w.ties} ties, ${w.losses} losses of ${w.n})`;
}
