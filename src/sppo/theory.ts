// SPPO in its population form, the object of the paper's analysis (Wu et al., ICLR 2025, Sec. 4,
// Theorem 4.1): over a finite set of responses Y with preference matrix P,
//   pi_{t+1}(y) ∝ pi_t(y) exp(eta P(y > pi_t)),   P(y > pi) = sum_j P[y][j] pi(j),
// which is the multiplicative-weights (Hedge) update with gains P(y > pi_t) in [0, 1].
//
// Bound on the averaged policy pi_bar_T = (1/T) sum_{t=1..T} pi_t. Hedge's regret against any
// fixed y, with gains in [0,1] and start pi_1, is at most ln(1/pi_1(y))/eta + eta T/8 (Hoeffding's
// lemma on each step). In a symmetric game P(pi_t > pi_t) = 1/2 (P_ij + P_ji = 1), and
// sum_t P(y > pi_t) = T P(y > pi_bar), so
//   exploitability(pi_bar_T) = max_y P(y > pi_bar_T) - 1/2 <= ln(1/min_y pi_1(y))/(eta T) + eta/8,
// minimised by eta = sqrt(8 ln(1/min pi_1)/T), giving sqrt(ln(1/min pi_1)/(2T)) = O(1/sqrt(T))
// (ln|Y| for a uniform start), the paper's rate.

export type Matrix = readonly (readonly number[])[];

/** P(y > pi) for every y. */
export function winAgainst(p: Matrix, pi: readonly number[]): number[] {
  return p.map((row) => row.reduce((a, v, j) => a + v * pi[j]!, 0));
}

/** One exact SPPO step (computed in log space shifted by the max, so large eta cannot overflow). */
export function sppoStep(p: Matrix, pi: readonly number[], eta: number): number[] {
  const w = winAgainst(p, pi);
  const logits = pi.map((v, i) => Math.log(v) + eta * w[i]!);
  const m = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/** max_y P(y > pi) - 1/2: zero exactly at a von Neumann winner (a symmetric Nash equilibrium). */
export function exploitability(p: Matrix, pi: readonly number[]): number {
  return Math.max(...winAgainst(p, pi)) - 0.5;
}

export interface SppoRun {
  iterates: number[][]; // pi_1 .. pi_{T+1}
  average: number[];    // (1/T) sum_{t=1..T} pi_t
}

export function runSppo(p: Matrix, start: readonly number[], eta: number, T: number): SppoRun {
  const iterates: number[][] = [[...start]];
  const sum = new Array<number>(start.length).fill(0);
  let pi = [...start];
  for (let t = 0; t < T; t++) {
    pi.forEach((v, i) => (sum[i]! += v));
    pi = sppoStep(p, pi, eta);
    iterates.push(pi);
  }
  return { iterates, average: sum.map((v) => v / T) };
}

/** The step size minimising the bound for horizon T from start pi_1. */
export function boundOptimalEta(start: readonly number[], T: number): number {
  return Math.sqrt((8 * Math.log(1 / Math.min(...start))) / T);
}

/** ln(1/min pi_1)/(eta T) + eta/8: the exploitability bound on pi_bar_T stated above. */
export function averageExploitabilityBound(start: readonly number[], eta: number, T: number): number {
  return Math.log(1 / Math.min(...start)) / (eta * T) + eta / 8;
}

/** KL(q || pi); for an interior equilibrium q this never decreases along SPPO (so no last-iterate convergence). */
export function kl(q: readonly number[], pi: readonly number[]): number {
  return q.reduce((a, v, i) => (v > 0 ? a + v * Math.log(v / pi[i]!) : a), 0);
}

/** Balanced cyclic tournament on odd n kinds: kind a beats each of the (n-1)/2 kinds before it with probability p. */
export function cyclicTournament(n: number, p: number): number[][] {
  if (!Number.isInteger(n) || n < 3 || n % 2 === 0) throw new Error(`cyclicTournament: n must be an odd integer >= 3 (got ${n})`);
  if (!(p >= 0 && p <= 1)) throw new Error(`cyclicTournament: p must be in [0, 1] (got ${p})`);
  return Array.from({ length: n }, (_, a) =>
    Array.from({ length: n }, (_, b) => {
      const d = (((a - b) % n) + n) % n;
      return d === 0 ? 0.5 : 2 * d < n ? p : 1 - p;
    }),
  );
}
