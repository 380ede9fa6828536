// Preference matrices: P[i][j] = P(y_i beats y_j | x). Validation and the score-based form.
// Reference (UCLA-AGI/SPPO scripts/compute_prob.py, from_ranks): prb[i][j] = 1 / (1 + exp(s_j - s_i)),
// i.e. sigma(s_i - s_j); sppo-native adds a temperature tau (tau = 1 is the reference).

/** Tolerance for P_ij + P_ji = 1 and the 0.5 diagonal: judges compute in float32 or print decimals. */
export const MATRIX_TOLERANCE = 1e-6;

/** Numerically stable logistic function. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/**
 * Throws an Error naming `what` (e.g. "judge 'command:x', prompt 3") and the offending entry when
 * `p` is not a K x K preference matrix: square, finite entries in [0,1], 0.5 diagonal,
 * P_ij + P_ji = 1 within `tol`. `k`, when given, is the expected size.
 */
export function validateMatrix(p: unknown, what: string, k?: number, tol = MATRIX_TOLERANCE): asserts p is number[][] {
  if (!Array.isArray(p)) throw new Error(`${what}: probability matrix must be an array of rows (got ${describe(p)})`);
  const n = p.length;
  if (n === 0) throw new Error(`${what}: probability matrix is empty`);
  if (k !== undefined && n !== k) throw new Error(`${what}: probability matrix has ${n} rows, expected ${k} (one per response)`);
  for (let i = 0; i < n; i++) {
    const row: unknown = p[i];
    if (!Array.isArray(row)) throw new Error(`${what}: probability row ${i} must be an array (got ${describe(row)})`);
    if (row.length !== n) throw new Error(`${what}: probability matrix must be square: row ${i} has ${row.length} entries, expected ${n}`);
    for (let j = 0; j < n; j++) {
      const v: unknown = row[j];
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${what}: probability[${i}][${j}] is not a finite number (got ${describe(v)})`);
      if (v < 0 || v > 1) throw new Error(`${what}: probability[${i}][${j}] = ${v} is outside [0, 1]`);
    }
  }
  const m = p as number[][];
  for (let i = 0; i < n; i++) {
    const d = m[i]![i]!;
    if (Math.abs(d - 0.5) > tol) throw new Error(`${what}: probability[${i}][${i}] = ${d}, the diagonal must be 0.5 (a response ties with itself)`);
    for (let j = i + 1; j < n; j++) {
      const s = m[i]![j]! + m[j]![i]!;
      if (Math.abs(s - 1) > tol) {
        throw new Error(`${what}: probability[${i}][${j}] + probability[${j}][${i}] = ${s}, must be 1 (within ${tol})`);
      }
    }
  }
}

/** Checks that `scores` is a list of `k` finite numbers; the error names `what`. */
export function validateScores(s: unknown, what: string, k?: number): asserts s is number[] {
  if (!Array.isArray(s)) throw new Error(`${what}: scores must be an array of numbers (got ${describe(s)})`);
  if (k !== undefined && s.length !== k) throw new Error(`${what}: got ${s.length} scores, expected ${k} (one per response)`);
  if (s.length === 0) throw new Error(`${what}: scores are empty`);
  s.forEach((v: unknown, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${what}: scores[${i}] is not a finite number (got ${describe(v)})`);
  });
}

/** P_ij = sigma((s_i - s_j) / tau): Bradley-Terry from scores; exact 0.5 diagonal, exact complement. */
export function matrixFromScores(scores: readonly number[], tau = 1): number[][] {
  if (!(tau > 0) || !Number.isFinite(tau)) throw new Error(`tau must be a positive finite number (got ${tau})`);
  const k = scores.length;
  const p: number[][] = Array.from({ length: k }, () => new Array<number>(k).fill(0.5));
  for (let i = 0; i < k; i++) {
    for (let j = i + 1; j < k; j++) {
      const v = sigmoid((scores[i]! - scores[j]!) / tau);
      p[i]![j] = v;
      p[j]![i] = 1 - v; // keeps P_ij + P_ji = 1 exactly, where sigma(-x) would round differently
    }
  }
  return p;
}

/**
 * The nearest consistent matrix to a raw pairwise one (e.g. a model asked both orders):
 * P'_ij = (P_ij + 1 - P_ji) / 2, diagonal 0.5. Entries must already be finite and in [0, 1].
 */
export function symmetrize(p: readonly (readonly number[])[]): number[][] {
  const k = p.length;
  return Array.from({ length: k }, (_, i) =>
    Array.from({ length: k }, (_, j) => (i === j ? 0.5 : (p[i]![j]! + 1 - p[j]![i]!) / 2)),
  );
}

export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'number') return String(v);
  return typeof v;
}
