// Systematic (stratified) sampling for the SPPO theory suites: a rollout whose share of each kind
// is pi up to rounding, so the measured iterates follow the theory without sampling noise.

/** K responses as kind indices, kind y about K pi(y) times (|count - K pi| < 1); offset in [0, 1). */
export function stratifiedRollout(pi: readonly number[], k: number, offset: number): number[] {
  const kinds: number[] = [];
  let y = 0;
  let cum = pi[0]!;
  for (let i = 0; i < k; i++) {
    const x = (i + offset) / k;
    while (x > cum && y < pi.length - 1) cum += pi[++y]!;
    kinds.push(y);
  }
  return kinds;
}
