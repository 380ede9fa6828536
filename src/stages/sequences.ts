// Token sequences for training: the sampled prompt ids followed by the sampled response ids, the
// response cut so that prompt + response <= maxLength (as TRL's max_length truncation).
import type { PreferencePair, ScoredSequence } from '../model/types.js';
import type { RolloutRow } from './rollout.js';
import type { TrainTableRow } from '../sppo/trainTable.js';

export function scoredSequence(prompt: number[], response: number[], maxLength: number): ScoredSequence {
  const room = Math.max(0, maxLength - prompt.length);
  return { tokens: [...prompt, ...response.slice(0, room)], promptLength: prompt.length };
}

export interface PairSequences {
  chosen: ScoredSequence;
  rejected: ScoredSequence;
}

export function pairSequences(rows: TrainTableRow[], rollout: Map<number, RolloutRow>, maxLength: number): PairSequences[] {
  return rows.map((r, i) => {
    const g = rollout.get(r.promptIndex);
    if (!g) throw new Error(`train table row ${i}: prompt ${r.promptIndex} is not in the generated table`);
    const c = g.responseTokens[r.chosenIndex];
    const l = g.responseTokens[r.rejectedIndex];
    if (!c || !l) throw new Error(`train table row ${i}: response index out of range for prompt ${r.promptIndex}`);
    return { chosen: scoredSequence(g.promptTokens, c, maxLength), rejected: scoredSequence(g.promptTokens, l, maxLength) };
  });
}

export function preferencePair(row: TrainTableRow, seqs: PairSequences, refChosen: number, refRejected: number): PreferencePair {
  return {
    chosen: seqs.chosen,
    rejected: seqs.rejected,
    refChosen,
    refRejected,
    chosenProbs: row.chosenProbs,
    chosenProbsWin: row.chosenProbsWin,
    chosenProbsLose: row.chosenProbsLose,
  };
}

/** Pairs whose chosen and rejected responses are the same token ids (temperature 0, or a self-pair). */
export function identicalPairs(rows: TrainTableRow[], rollout: Map<number, RolloutRow>): number {
  let n = 0;
  for (const r of rows) {
    const g = rollout.get(r.promptIndex);
    const c = g?.responseTokens[r.chosenIndex];
    const l = g?.responseTokens[r.rejectedIndex];
    if (c && l && c.length === l.length && c.every((x, i) => x === l[i])) n++;
  }
  return n;
}
