// Win rates, pairs and training rows against the reference pipeline's definitions
// (UCLA-AGI/SPPO scripts/compute_prob.py): hand-checked cases, then random ones against a direct
// float64 transcription of those definitions.
import { describe, expect, it } from 'vitest';
import { matrixFromScores, sigmoid, symmetrize, validateMatrix, validateScores } from '../src/judge/matrix.js';
import { winRates } from '../src/sppo/winRates.js';
import { pairingSupportsLoss, parsePairing, selectPairs } from '../src/sppo/pairs.js';
import { trainRows } from '../src/sppo/trainTable.js';
import { seededRandom } from './sppo.seed.js';

// The reference, written out: prb[i][j] = 1/(1+exp(s_j - s_i)); win rate = row sum / K;
// (w, l) = (first argmax, first argmin) of the scores; chosen_probs = prb[w][l].
function reference(scores: number[]) {
  const K = scores.length;
  const prb = scores.map((si) => scores.map((sj) => 1 / (1 + Math.exp(sj - si))));
  const rate = prb.map((row) => row.reduce((a, b) => a + b, 0) / K);
  const w = scores.indexOf(Math.max(...scores));
  const l = scores.indexOf(Math.min(...scores));
  return { prb, rate, w, l, chosenProbs: prb[w]![l]!, win: rate[w]!, lose: rate[l]! };
}

describe('win rates and best-worst pairs (hand-checked)', () => {
  it('scores [1, 3, 2]', () => {
    // sigma(1) = 0.7310585786300049, sigma(2) = 0.8807970779778823.
    // Rows: [0.5, 0.1192029, 0.2689414] -> 0.2960481; [0.8807971, 0.5, 0.7310586] -> 0.7039519;
    //       [0.7310586, 0.2689414, 0.5] -> 0.5.
    const P = matrixFromScores([1, 3, 2]);
    expect(P[1]![0]).toBeCloseTo(0.8807970779778823, 15);
    expect(P[0]![2]).toBeCloseTo(0.2689414213699951, 15);
    const r = winRates(P);
    expect(r[0]).toBeCloseTo(0.29604811446, 10);
    expect(r[1]).toBeCloseTo(0.70395188554, 10);
    expect(r[2]).toBeCloseTo(0.5, 15);
    const [pair, ...more] = selectPairs(P, [1, 3, 2], 'best-worst');
    expect(more).toHaveLength(0);
    expect(pair).toEqual({ chosen: 1, rejected: 0, chosenProbs: P[1]![0], chosenProbsWin: r[1], chosenProbsLose: r[0] });
  });

  it('ties take the first index of the max and of the min, as numpy argmax/argmin', () => {
    const s = [2, 5, 5, 1, 1];
    const [p] = selectPairs(matrixFromScores(s), s, 'best-worst');
    expect([p!.chosen, p!.rejected]).toEqual([1, 3]);
    // All equal: the reference pairs response 0 with itself.
    const [q] = selectPairs(matrixFromScores([4, 4, 4]), [4, 4, 4], 'best-worst');
    expect(q).toEqual({ chosen: 0, rejected: 0, chosenProbs: 0.5, chosenProbsWin: 0.5, chosenProbsLose: 0.5 });
  });

  it('pairwise judges (no scores) rank by win rate', () => {
    // rock, rock, paper under p = 0.9: rows sum to 1.1, 1.1, 2.3.
    const P = [
      [0.5, 0.5, 0.1],
      [0.5, 0.5, 0.1],
      [0.9, 0.9, 0.5],
    ];
    const [p] = selectPairs(P, null, 'best-worst');
    expect(p!.chosen).toBe(2);
    expect(p!.rejected).toBe(0);
    expect(p!.chosenProbs).toBe(0.9);
    expect(p!.chosenProbsWin).toBeCloseTo(2.3 / 3, 15);
    expect(p!.chosenProbsLose).toBeCloseTo(1.1 / 3, 15);
  });

  it('matches the reference on random score sets, ties included', () => {
    const { rand } = seededRandom('best-worst vs reference');
    for (let trial = 0; trial < 200; trial++) {
      const K = 2 + Math.floor(rand() * 7);
      // Half the trials draw from few values to force ties.
      const scores = Array.from({ length: K }, () => (trial % 2 ? Math.floor(rand() * 3) : (rand() - 0.5) * 10));
      const ref = reference(scores);
      const P = matrixFromScores(scores);
      P.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - ref.prb[i]![j]!)).toBeLessThan(1e-15)));
      winRates(P).forEach((v, i) => expect(Math.abs(v - ref.rate[i]!)).toBeLessThan(1e-14));
      const [p] = selectPairs(P, scores, 'best-worst');
      expect([p!.chosen, p!.rejected]).toEqual([ref.w, ref.l]);
      expect(Math.abs(p!.chosenProbs - ref.chosenProbs)).toBeLessThan(1e-15);
      expect(Math.abs(p!.chosenProbsWin - ref.win)).toBeLessThan(1e-14);
      expect(Math.abs(p!.chosenProbsLose - ref.lose)).toBeLessThan(1e-14);
    }
  });

  it('tau scales the score differences', () => {
    const P = matrixFromScores([0, 3], 2);
    expect(P[1]![0]).toBeCloseTo(sigmoid(1.5), 15);
    expect(P[0]![1]! + P[1]![0]!).toBe(1);
  });
});

describe('`all` pairing (Algorithm 1)', () => {
  it('uses every response once as chosen and once as rejected, and the sppo loss sums to Algorithm 1', () => {
    const { rand } = seededRandom('all pairing');
    for (let trial = 0; trial < 50; trial++) {
      const K = 1 + Math.floor(rand() * 8);
      const scores = Array.from({ length: K }, () => Math.floor(rand() * 4));
      const P = matrixFromScores(scores, 0.5 + rand());
      const rates = winRates(P);
      const pairs = selectPairs(P, scores, 'all');
      expect(pairs).toHaveLength(K);
      const chosen = pairs.map((p) => p.chosen).sort((a, b) => a - b);
      const rejected = pairs.map((p) => p.rejected).sort((a, b) => a - b);
      expect(chosen).toEqual([...Array(K).keys()]);
      expect(rejected).toEqual([...Array(K).keys()]);
      // The first row is the best-worst order's best, as the reference's argmax.
      expect(pairs[0]!.chosen).toBe(scores.indexOf(Math.max(...scores)));
      // sppo loss per row with random log-ratios s(y) and eta.
      const eta = 1 + rand() * 1000;
      const s = Array.from({ length: K }, () => (rand() - 0.5) * 50);
      const rows = pairs.map((p) => {
        expect(p.chosenProbsWin).toBe(rates[p.chosen]);
        expect(p.chosenProbsLose).toBe(rates[p.rejected]);
        expect(p.chosenProbs).toBe(P[p.chosen]![p.rejected]);
        return 0.5 * ((s[p.chosen]! - eta * (p.chosenProbsWin - 0.5)) ** 2 + (s[p.rejected]! - eta * (p.chosenProbsLose - 0.5)) ** 2);
      });
      const alg1 = s.reduce((a, v, k) => a + (v - eta * (rates[k]! - 0.5)) ** 2, 0);
      const sum = rows.reduce((a, b) => a + b, 0);
      expect(Math.abs(sum - alg1)).toBeLessThanOrEqual(1e-9 * Math.max(1, alg1));
    }
  });

  it('says which losses it suits, and parses names', () => {
    expect(pairingSupportsLoss('all', 'sppo')).toBe(true);
    expect(pairingSupportsLoss('all', 'dpo')).toBe(false);
    expect(pairingSupportsLoss('best-worst', 'dpo')).toBe(true);
    expect(parsePairing('all')).toBe('all');
    expect(() => parsePairing('random')).toThrow(/pairing must be one of best-worst, all \(got 'random'\)/);
  });
});

describe('training rows', () => {
  it('have the reference columns and message lists', () => {
    const judgment = { probability: matrixFromScores([0.2, -1, 0.7]), scores: [0.2, -1, 0.7] };
    const rows = trainRows({ promptIndex: 4, prompt: 'Name a colour.', responses: ['Red.', 'Hm.', 'Blue and green.'], ...judgment }, 'best-worst');
    const r = winRates(judgment.probability);
    expect(rows).toEqual([
      {
        promptIndex: 4,
        chosenIndex: 2,
        rejectedIndex: 1,
        chosen: [
          { content: 'Name a colour.', role: 'user' },
          { content: 'Blue and green.', role: 'assistant' },
        ],
        rejected: [
          { content: 'Name a colour.', role: 'user' },
          { content: 'Hm.', role: 'assistant' },
        ],
        chosenProbs: judgment.probability[2]![1],
        chosenProbsWin: r[2],
        chosenProbsLose: r[1],
      },
    ]);
  });

  it('refuse a judgment of the wrong size, naming the prompt', () => {
    const judgment = { probability: matrixFromScores([1, 2]), scores: [1, 2] };
    expect(() => trainRows({ promptIndex: 7, prompt: 'x', responses: ['a', 'b', 'c'], ...judgment }, 'best-worst')).toThrow(/prompt 7: the judgment has a 2x2 matrix for 3 responses/);
  });
});

describe('matrix validation', () => {
  const ok = matrixFromScores([0.3, -0.2, 1.1]);
  const bad = (f: (m: number[][]) => void) => {
    const m = ok.map((r) => [...r]);
    f(m);
    return m;
  };
  it('accepts consistent matrices and symmetrizes raw pairwise ones', () => {
    expect(() => validateMatrix(ok, 'm', 3)).not.toThrow();
    const raw = [
      [0.5, 0.7, 0.2],
      [0.4, 0.5, 0.9],
      [0.6, 0.3, 0.5],
    ];
    expect(() => validateMatrix(raw, 'raw')).toThrow(/probability\[0\]\[1\] \+ probability\[1\]\[0\] = 1\.1/);
    const sym = symmetrize(raw);
    expect(() => validateMatrix(sym, 'sym')).not.toThrow();
    expect(sym[0]![1]).toBeCloseTo((0.7 + 1 - 0.4) / 2, 15);
  });
  it.each([
    ['not an array', () => 'x', /m: probability matrix must be an array of rows \(got the string "x"\)/],
    ['empty', () => [], /m: probability matrix is empty/],
    ['non-square', () => bad((m) => m[1]!.pop()), /row 1 has 2 entries, expected 3/],
    ['wrong K', () => [[0.5]], /has 1 rows, expected 3/],
    ['NaN', () => bad((m) => (m[2]![0] = NaN)), /probability\[2\]\[0\] is not a finite number \(got NaN\)/],
    ['a string entry', () => bad((m) => ((m[0] as unknown[])[1] = '0.3')), /probability\[0\]\[1\] is not a finite number/],
    ['out of range', () => bad((m) => (m[0]![1] = 1.5)), /probability\[0\]\[1\] = 1\.5 is outside \[0, 1\]/],
    ['diagonal', () => bad((m) => (m[1]![1] = 0.4)), /probability\[1\]\[1\] = 0\.4, the diagonal must be 0\.5/],
    ['not complementary', () => bad((m) => (m[0]![2] = m[0]![2]! + 0.01)), /probability\[0\]\[2\] \+ probability\[2\]\[0\] = 1\.01/],
  ])('rejects %s with a clear error', (_name, make, msg) => {
    expect(() => validateMatrix(make(), 'm', 3)).toThrow(msg);
    // Pair selection validates too (a 1x1 matrix is valid on its own, so 'wrong K' is only a size error).
    if (_name !== 'wrong K') expect(() => selectPairs(make() as number[][], null, 'best-worst', 'm')).toThrow(msg);
  });
  it('checks scores', () => {
    expect(() => validateScores([1, 2], 's', 3)).toThrow(/s: got 2 scores, expected 3/);
    expect(() => validateScores([1, Infinity, 2], 's', 3)).toThrow(/s: scores\[1\] is not a finite number \(got Infinity\)/);
    expect(() => selectPairs(ok, [1, 2], 'best-worst', 'prompt 3')).toThrow(/prompt 3: got 2 scores, expected 3/);
    expect(() => matrixFromScores([1, 2], 0)).toThrow(/tau must be a positive finite number/);
  });
});
