// From PairRM's comparison logits to per-response scores, as llm-blender's Blender.rank with
// return_scores (policy "max_logits"): M[i][j] is the logit of the pair with response i first
// and j second (M is not antisymmetric; the diagonal is 0, never computed), and
//   s_i = mean over all K entries j of (M[i][j] - M[j][i]).
// The pipeline then takes P_ij = sigma(s_i - s_j) (src/judge/matrix.ts).
export function scoresFromComparisons(m: readonly (readonly number[])[]): number[] {
  const k = m.length;
  return m.map((row, i) => {
    let s = 0;
    for (let j = 0; j < k; j++) s += row[j]! - m[j]![i]!;
    return s / k;
  });
}
