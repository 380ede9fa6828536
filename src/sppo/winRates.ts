// Win rates against the current policy: P^(y_i > pi_t | x) = (1/K) sum_j P_ij, including the
// 0.5 self term. Reference: UCLA-AGI/SPPO scripts/compute_prob.py, prepare_score:
// `np.stack(probability).sum(axis=1)` (row sums) divided by the number of responses.
import { validateMatrix } from '../judge/matrix.js';

export function winRates(p: readonly (readonly number[])[], what = 'win rates'): number[] {
  validateMatrix(p as unknown, what);
  const k = p.length;
  return p.map((row) => row.reduce((a, b) => a + b, 0) / k);
}
