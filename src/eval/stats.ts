// Win rate of A against B from per-prompt comparisons, with a confidence interval.
//
// Each comparison is an outcome in [0, 1]: 1 = A won, 0 = B won, 0.5 = tie, or a judge's
// probability P(A > B). The win rate is their mean. With one comparison per prompt the interval is
// Wilson's score interval computed with n comparisons and p^ = mean: for 0/1 outcomes it is the
// usual Wilson interval; ties and probabilities have variance at most mu(1 - mu) (any variable in
// [0, 1] does), so the same interval is, if anything, conservative for them. Wilson rather than the
// normal approximation because win rates near 0 or 1 (a good iteration) are exactly where the
// latter breaks down.
//
// Several samples per prompt are not independent: the prompt (its difficulty, its topic) moves all
// of them together, so n comparisons carry less information than n independent ones. Given each
// comparison's prompt (`clusters`), the interval uses the cluster-robust (sandwich) variance of the
// mean, G/(G-1) sum_c (S_c - n_c mu)^2 / n^2 over G prompts, through the design effect
// deff = var_cluster / var_iid (Kish): Wilson's interval with the effective size n / max(1, deff).
// That keeps Wilson's behaviour near 0 and 1, equals plain Wilson when every prompt has one
// comparison, and never reports a narrower interval than the independent one. A cluster (prompt)
// bootstrap is available for comparison (seeded, so reproducible).
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
  /** 'wilson' / 'bootstrap': comparisons treated as independent (one per prompt); the cluster-
   * methods account for several comparisons per prompt. */
  method: 'wilson' | 'bootstrap' | 'cluster-wilson' | 'cluster-bootstrap';
  /** Independent units: prompts when `clusters` were given, else n. */
  clusters?: number;
  /** var(mean) over its value for independent comparisons (1 when each prompt has one). */
  designEffect?: number;
}

/** A prompt's identity (its index or its text): comparisons with equal keys share a prompt. */
export type ClusterKey = string | number;

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

/** Groups comparison indices by prompt, in order of first appearance; throws on a bad key list. */
function groupClusters(outcomes: readonly number[], clusters: readonly ClusterKey[]): number[][] {
  if (!Array.isArray(clusters) || clusters.length !== outcomes.length) {
    const got = Array.isArray(clusters) ? `${clusters.length} entries` : `a ${typeof clusters}`;
    throw new Error(`win rate: clusters has ${got} for ${outcomes.length} comparisons (one prompt id per comparison)`);
  }
  const groups = new Map<ClusterKey, number[]>();
  clusters.forEach((c, i) => {
    if (!(typeof c === 'string' || (typeof c === 'number' && Number.isFinite(c)))) {
      throw new Error(`win rate: clusters[${i}] is ${String(c)}, expected a prompt id (a string or a finite number)`);
    }
    const g = groups.get(c);
    if (g) g.push(i);
    else groups.set(c, [i]);
  });
  return [...groups.values()];
}

/**
 * Design effect of the mean under clustering: the cluster-robust variance of the mean over the
 * independent-sample one, floored at 1 (see the header). Outcomes that are all equal carry no
 * within-sample variance to compare with, so each prompt then counts once (deff = n / G).
 */
export function designEffect(outcomes: readonly number[], clusters: readonly ClusterKey[]): number {
  checkOutcomes(outcomes, 0.95);
  return designEffectOfGroups(outcomes, groupClusters(outcomes, clusters));
}

function designEffectOfGroups(outcomes: readonly number[], groups: readonly (readonly number[])[]): number {
  const n = outcomes.length;
  const g = groups.length;
  if (g === n) return 1;
  if (g < 2) return n; // one prompt: no between-prompt variance can be estimated; it counts once
  let sum = 0;
  for (const o of outcomes) sum += o;
  const mu = sum / n;
  let ss = 0;
  for (const o of outcomes) ss += (o - mu) * (o - mu);
  if (!(ss > 0)) return n / g;
  let between = 0;
  for (const idx of groups) {
    let r = 0;
    for (const i of idx) r += outcomes[i]! - mu;
    between += r * r;
  }
  const varCluster = ((g / (g - 1)) * between) / (n * n);
  const varIid = ss / (n - 1) / n;
  return Math.max(1, varCluster / varIid);
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

/**
 * Win rate with a Wilson interval. `clusters` (optional) gives each comparison's prompt; with
 * several comparisons per prompt the interval widens by the design effect (see the header).
 */
export function winRate(outcomes: readonly number[], confidence = 0.95, clusters?: readonly ClusterKey[]): WinRate {
  checkOutcomes(outcomes, confidence);
  const c = counts(outcomes);
  const n = outcomes.length;
  const groups = clusters === undefined ? null : groupClusters(outcomes, clusters);
  const base = { n, wins: c.wins, losses: c.losses, ties: c.ties, winRate: c.mean, confidence };
  if (groups === null || groups.length === n) {
    const [lower, upper] = wilsonInterval(c.mean, n, confidence);
    return { ...base, lower, upper, method: 'wilson', clusters: n, designEffect: 1 };
  }
  const deff = designEffectOfGroups(outcomes, groups);
  const [lower, upper] = wilsonInterval(c.mean, n / deff, confidence);
  return { ...base, lower, upper, method: 'cluster-wilson', clusters: groups.length, designEffect: deff };
}

/** Win rate from comparisons grouped by prompt: perPrompt[i] holds prompt i's outcomes. */
export function winRateByPrompt(perPrompt: readonly (readonly number[])[], confidence = 0.95): WinRate {
  if (!Array.isArray(perPrompt)) throw new Error('win rate: perPrompt must be an array of per-prompt outcome lists');
  const outcomes: number[] = [];
  const clusters: number[] = [];
  perPrompt.forEach((os, p) => {
    if (!Array.isArray(os)) throw new Error(`win rate: perPrompt[${p}] must be an array of outcomes (got ${typeof os})`);
    for (const o of os) {
      outcomes.push(o);
      clusters.push(p);
    }
  });
  return winRate(outcomes, confidence, clusters);
}

/**
 * Win rate with a percentile bootstrap interval (mulberry32 stream from `seed`). Resamples prompts
 * when `clusters` is given (all of a prompt's comparisons together; the mean is then the ratio
 * sum / count over the drawn prompts), single comparisons otherwise.
 */
export function winRateBootstrap(
  outcomes: readonly number[],
  confidence = 0.95,
  resamples = 2000,
  seed = 1,
  clusters?: readonly ClusterKey[],
): WinRate {
  checkOutcomes(outcomes, confidence);
  if (!Number.isInteger(resamples) || resamples < 100) throw new Error(`win rate: resamples must be an integer >= 100 (got ${resamples})`);
  const n = outcomes.length;
  const groups = clusters === undefined ? outcomes.map((_, i) => [i]) : groupClusters(outcomes, clusters);
  const g = groups.length;
  const sums = groups.map((idx) => idx.reduce((a, i) => a + outcomes[i]!, 0));
  const sizes = groups.map((idx) => idx.length);
  const rand = mulberry32(seed);
  const means = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let sum = 0;
    let count = 0;
    for (let i = 0; i < g; i++) {
      const c = Math.floor(rand() * g);
      sum += sums[c]!;
      count += sizes[c]!;
    }
    means[b] = sum / count;
  }
  means.sort();
  const alpha = (1 - confidence) / 2;
  const at = (q: number) => means[Math.min(resamples - 1, Math.max(0, Math.floor(q * resamples)))]!;
  const c = counts(outcomes);
  const clustered = g < n;
  return {
    n, wins: c.wins, losses: c.losses, ties: c.ties, winRate: c.mean, lower: at(alpha), upper: at(1 - alpha), confidence,
    method: clustered ? 'cluster-bootstrap' : 'bootstrap', clusters: g,
  };
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

const count = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

export function formatWinRate(w: WinRate): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const prompts = w.clusters !== undefined && w.clusters < w.n
    ? ` over ${w.clusters} prompts${w.designEffect !== undefined ? `, design effect ${w.designEffect.toFixed(2)}` : ''}`
    : '';
  return `${pct(w.winRate)} [${pct(w.lower)}, ${pct(w.upper)}] (${Math.round(100 * w.confidence)}% ${w.method}; ${count(w.wins, 'win')}, ${count(w.ties, 'tie')}, ${count(w.losses, 'loss', 'losses')} of ${w.n}${prompts})`;
}
