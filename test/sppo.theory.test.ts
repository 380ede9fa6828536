// SPPO's theory, checked on exact population dynamics (src/sppo/theory.ts has the update and the
// derivation of the bound): under intransitive preferences the averaged policy approaches the von
// Neumann winner at the O(1/sqrt(T)) rate of the paper's regret argument, while the last iterate
// need not converge; under a transitive (Bradley-Terry) preference SPPO concentrates on the best
// response. Fresh random games each run; the seed is logged.
// These check the mathematics on theory.ts's closed-form update only; the same claims through the
// real implementation (winRates, the training table, the native loss kernel, the engine's training
// step) are in test/sppo.theory.kernel.test.ts and test/sppo.theory.engine.test.ts.
import { describe, expect, it } from 'vitest';
import {
  averageExploitabilityBound,
  boundOptimalEta,
  cyclicTournament,
  exploitability,
  kl,
  runSppo,
  type Matrix,
} from '../src/sppo/theory.js';
import { sigmoid, validateMatrix } from '../src/judge/matrix.js';
import { seededRandom } from './sppo.seed.js';

/** Rock-paper-scissors with P(winner) = p. */
const rps = (p: number): number[][] => [
  [0.5, 1 - p, p],
  [p, 0.5, 1 - p],
  [1 - p, p, 0.5],
];

/** A random skew-symmetric game: P = 1/2 + A, A = -A^T, entries of P in [0, 1]. */
function randomGame(n: number, rand: () => number): number[][] {
  const P = Array.from({ length: n }, () => new Array<number>(n).fill(0.5));
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      P[i]![j] = rand();
      P[j]![i] = 1 - P[i]![j]!;
    }
  }
  return P;
}

/** A random interior start, away from the equilibrium: Dirichlet(1)-like weights plus a floor. */
function randomStart(n: number, rand: () => number): number[] {
  const e = Array.from({ length: n }, () => 0.05 - Math.log(1 - rand()));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

const uniform = (n: number) => new Array<number>(n).fill(1 / n);

describe('SPPO under intransitive preferences', () => {
  const T = 2000;

  it(`the averaged policy is an approximate von Neumann winner after T = ${T} iterations: exploitability <= sqrt(ln(1/min pi_1)/(2T)) < 0.05`, () => {
    const { rand } = seededRandom('theory: cyclic tournaments');
    for (let trial = 0; trial < 20; trial++) {
      const n = [3, 5, 7][trial % 3]!;
      const p = 0.6 + 0.35 * rand();
      const P = cyclicTournament(n, p);
      validateMatrix(P, 'game');
      const start = randomStart(n, rand);
      expect(Math.min(...start)).toBeGreaterThan(0.002); // keeps the stated bound below 0.05
      const eta = boundOptimalEta(start, T);
      const bound = averageExploitabilityBound(start, eta, T);
      expect(bound).toBeCloseTo(Math.sqrt(Math.log(1 / Math.min(...start)) / (2 * T)), 12);
      expect(bound).toBeLessThan(0.05);
      const run = runSppo(P, start, eta, T);
      const e0 = exploitability(P, start);
      const eAvg = exploitability(P, run.average);
      expect(e0).toBeGreaterThan(0); // a non-equilibrium start
      expect(eAvg).toBeGreaterThanOrEqual(0); // true of every policy in a symmetric game
      expect(eAvg).toBeLessThanOrEqual(bound);
      if (n === 3) {
        // RPS: exploitability e bounds every gap pi_i - pi_j by 2e/(p - 1/2) (each gap is some
        // pi_{k-1} - pi_{k+1}, and these sum to 0), so the average is near the uniform winner.
        for (const a of run.average) for (const b of run.average) expect(Math.abs(a - b)).toBeLessThanOrEqual((2 * eAvg) / (p - 0.5) + 1e-12);
      }
    }
  });

  it('the bound holds on random skew-symmetric games at every horizon', () => {
    const { rand } = seededRandom('theory: random games');
    for (let trial = 0; trial < 20; trial++) {
      const n = 3 + Math.floor(rand() * 6);
      const P = randomGame(n, rand);
      const start = randomStart(n, rand);
      for (const horizon of [50, 500, 2000]) {
        const eta = boundOptimalEta(start, horizon);
        const run = runSppo(P, start, eta, horizon);
        expect(exploitability(P, run.average)).toBeLessThanOrEqual(averageExploitabilityBound(start, eta, horizon));
      }
    }
  });

  it('the last iterate does not converge: KL(uniform || pi_t) never decreases, so pi_t stays exploitable', () => {
    const { rand } = seededRandom('theory: last iterate');
    for (let trial = 0; trial < 20; trial++) {
      const p = 0.6 + 0.35 * rand();
      const P = rps(p);
      const start = randomStart(3, rand);
      const run = runSppo(P, start, boundOptimalEta(start, T), T);
      const u = uniform(3);
      const kl0 = kl(u, start);
      let prev = kl0;
      for (const pi of run.iterates) {
        const d = kl(u, pi);
        // Interior equilibrium u has (P - 1/2)u = 0, so KL(u||pi_{t+1}) - KL(u||pi_t) =
        // log E_pi[exp(eta (P(y > pi) - 1/2))] >= 0 by Jensen.
        expect(d).toBeGreaterThanOrEqual(prev - 1e-12);
        prev = d;
        // KL(u||pi) <= chi^2 <= 3 |pi - u|_inf^2 / min pi and e(pi) >= (p - 1/2)|pi - u|_inf / 2.
        const lower = ((p - 0.5) / 2) * Math.sqrt((kl0 * Math.min(...pi)) / 3);
        expect(exploitability(P, pi)).toBeGreaterThanOrEqual(lower - 1e-12);
      }
      expect(kl(u, run.iterates[T]!)).toBeGreaterThanOrEqual(kl0);
      expect(kl0).toBeGreaterThan(0);
    }
  });

  it('with a large step (eta = 5) the last iterate cycles near the pure kinds while the average still approaches the winner', () => {
    const { rand } = seededRandom('theory: large eta');
    for (let trial = 0; trial < 20; trial++) {
      const p = 0.6 + 0.35 * rand();
      const P = rps(p);
      const start = randomStart(3, rand);
      const run = runSppo(P, start, 5, T);
      const window = run.iterates.slice(T - 500);
      const leaders = new Set(window.map((pi) => pi.indexOf(Math.max(...pi))));
      expect(leaders.size).toBe(3); // rock -> paper -> scissors -> rock ...
      for (const pi of window) {
        // On the simplex boundary RPS exploitability is >= (p - 1/2)/3 (least at (1/3, 2/3, 0));
        // moving mass min(pi) changes each gain by at most 2 min(pi).
        expect(exploitability(P, pi)).toBeGreaterThanOrEqual((p - 0.5) / 3 - 2 * Math.min(...pi));
        expect(Math.min(...pi)).toBeLessThan(1e-5);
      }
      // Not covered by the regret bound (eta/8 > 1/2 here), but the time average of the cycle sits
      // near the interior equilibrium, as for the replicator dynamics' periodic orbits.
      expect(exploitability(P, run.average)).toBeLessThan(0.1 * (p - 0.5));
    }
  });
});

describe('SPPO under a transitive (Bradley-Terry) preference', () => {
  it('concentrates on the best response: pi_T(best) >= 0.99 within the iterations the gap bound gives', () => {
    const { rand } = seededRandom('theory: Bradley-Terry');
    for (let trial = 0; trial < 20; trial++) {
      const n = 3 + Math.floor(rand() * 4);
      // Rewards at least 0.3 apart, in random order.
      const r = Array.from({ length: n }, (_, i) => i * (0.3 + 0.4 * rand())).sort(() => rand() - 0.5);
      const P: Matrix = r.map((ri) => r.map((rj) => sigmoid(ri - rj)));
      const best = r.indexOf(Math.max(...r));
      // P(best > pi) - P(y > pi) >= gap for every pi, so log(pi_t(best)/pi_t(y)) grows by >= eta gap
      // per step.
      let gap = Infinity;
      r.forEach((_, y) => {
        if (y !== best) r.forEach((_, j) => (gap = Math.min(gap, P[best]![j]! - P[y]![j]!)));
      });
      expect(gap).toBeGreaterThan(0);
      const start = randomStart(n, rand);
      const eta = 10;
      const ratio = start.reduce((a, v, y) => (y === best ? a : a + v / start[best]!), 0);
      const T = 1 + Math.max(0, Math.ceil(Math.log(99 * ratio) / (eta * gap)));
      expect(T).toBeLessThan(20_000);
      const run = runSppo(P, start, eta, T);
      const last = run.iterates[T]!;
      const guaranteed = 1 / (1 + ratio * Math.exp(-eta * T * gap));
      expect(last[best]).toBeGreaterThanOrEqual(guaranteed - 1e-12);
      expect(last[best]).toBeGreaterThanOrEqual(0.99);
    }
  });
});
