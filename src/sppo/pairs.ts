// Which responses become training pairs, and with which targets.
//
// `best-worst` (the reference, UCLA-AGI/SPPO scripts/compute_prob.py, prepare_score):
//   chosen w = argmax score, rejected l = argmin score, where score is the judge's rm_scores;
//   chosen_probs = P[w][l], chosen_probs_win = P^(y_w > pi_t), chosen_probs_lose = P^(y_l > pi_t).
//   Ties follow numpy's argmax/argmin exactly: the FIRST index of the maximum / minimum. So when
//   every score is equal, w = l = 0 and the row pairs a response with itself (P_wl = 0.5,
//   p_w = p_l); the reference keeps such rows and so do we (the sppo loss then pulls both log-ratios
//   to the same target, which is still the Algorithm 1 update for that response).
//   Pairwise judges without scores: the win rates P^ are used as the scores.
//
// `all` (the paper's Algorithm 1: every sampled response y_k with its own target P^_k):
//   responses are ranked by score (descending, ties by index) and row r pairs rank r (chosen)
//   with rank r+1 mod K (rejected), so each response is chosen in exactly one row and rejected in
//   exactly one row. For the `sppo` loss, with t_k = eta (P^_k - 1/2):
//     sum over the K rows of 1/2[(s(y_w) - t_w)^2 + (s(y_l) - t_l)^2] = sum_k (s(y_k) - t_k)^2,
//   exactly Algorithm 1's squared loss over all K responses (the mean over rows is its mean).
//   K = 1 gives one self-pair. The wrap-around row has the worst response as `chosen`, so `all` is
//   meant for the `sppo` loss; with dpo/ipo/sppo_single that row would push the wrong way
//   (see pairingSupportsLoss).
import { validateMatrix, validateScores } from '../judge/matrix.js';
import { winRates } from './winRates.js';

export const PAIRINGS = ['best-worst', 'all'] as const;
export type Pairing = (typeof PAIRINGS)[number];

export interface Pair {
  chosen: number;          // response index w
  rejected: number;        // response index l
  chosenProbs: number;     // P_wl
  chosenProbsWin: number;  // p_w = P^(y_w > pi_t)
  chosenProbsLose: number; // p_l = P^(y_l > pi_t)
}

/** First index of the maximum (numpy.argmax semantics). */
export function argmax(xs: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

/** First index of the minimum (numpy.argmin semantics). */
export function argmin(xs: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! < xs[best]!) best = i;
  return best;
}

export function parsePairing(s: string): Pairing {
  if ((PAIRINGS as readonly string[]).includes(s)) return s as Pairing;
  throw new Error(`pairing must be one of ${PAIRINGS.join(', ')} (got '${s}')`);
}

/** Only `sppo` sums exactly to Algorithm 1 under `all` pairing; every loss accepts best-worst. */
export function pairingSupportsLoss(pairing: Pairing, loss: string): boolean {
  return pairing === 'best-worst' || loss === 'sppo';
}

/**
 * Pairs for one prompt from its K x K matrix and (optional) scores. Throws, naming `what`, on an
 * invalid matrix or scores of the wrong size.
 */
export function selectPairs(
  probability: readonly (readonly number[])[],
  scores: readonly number[] | null,
  pairing: Pairing,
  what = 'pairs',
): Pair[] {
  validateMatrix(probability as unknown, what);
  const k = probability.length;
  if (scores !== null) validateScores(scores as unknown, what, k);
  const rates = winRates(probability, what);
  const key = scores ?? rates;
  const pair = (w: number, l: number): Pair => ({
    chosen: w,
    rejected: l,
    chosenProbs: probability[w]![l]!,
    chosenProbsWin: rates[w]!,
    chosenProbsLose: rates[l]!,
  });
  if (pairing === 'best-worst') return [pair(argmax(key), argmin(key))];
  if (pairing === 'all') {
    // Stable descending order: equal scores keep index order, matching argmax's first-index rule.
    const order = Array.from({ length: k }, (_, i) => i).sort((a, b) => key[b]! - key[a]! || a - b);
    return order.map((w, r) => pair(w, order[(r + 1) % k]!));
  }
  throw new Error(`pairing must be one of ${PAIRINGS.join(', ')} (got '${String(pairing)}')`);
}
