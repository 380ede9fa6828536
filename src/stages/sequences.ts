// Token sequences for training: the sampled prompt ids followed by the sampled response ids, cut to
// the training lengths by one of two rules (lengths.truncation):
//   reference  the reference trainer's rule (uclaml/SPPO sppo/trainer.py tokenize_row, TRL's
//              keep_end): only when prompt + the LONGER response of the pair exceeds maxLength is
//              the prompt cut to its last maxPromptTokens tokens; if that is still too long, BOTH
//              responses are cut to maxLength - maxPromptTokens tokens.
//   fit        each response is cut to the room its prompt leaves: prompt + response <= maxLength.
import type { PreferencePair, ScoredSequence } from '../model/types.js';
import type { RolloutRow } from './rollout.js';
import type { TrainTableRow } from '../sppo/trainTable.js';

export const TRUNCATIONS = ['reference', 'fit'] as const;
export type Truncation = (typeof TRUNCATIONS)[number];

export interface TrainLengths {
  maxLength: number;
  maxPromptTokens: number;
  truncation: Truncation;
}

export function scoredSequence(prompt: number[], response: number[], maxLength: number): ScoredSequence {
  const room = Math.max(0, maxLength - prompt.length);
  return { tokens: [...prompt, ...response.slice(0, room)], promptLength: prompt.length };
}

export interface PairSequences {
  chosen: ScoredSequence;
  rejected: ScoredSequence;
}

/** The reference rule on one pair (both responses share the prompt). */
export function referenceTruncation(prompt: number[], chosen: number[], rejected: number[], maxLength: number, maxPromptTokens: number): PairSequences {
  const longer = Math.max(chosen.length, rejected.length);
  let p = prompt;
  if (p.length + longer > maxLength) p = p.slice(Math.max(0, p.length - maxPromptTokens));
  let c = chosen;
  let r = rejected;
  if (p.length + longer > maxLength) {
    const keep = Math.max(0, maxLength - maxPromptTokens);
    c = c.slice(0, keep);
    r = r.slice(0, keep);
  }
  return { chosen: { tokens: [...p, ...c], promptLength: p.length }, rejected: { tokens: [...p, ...r], promptLength: p.length } };
}

export function truncatePair(prompt: number[], chosen: number[], rejected: number[], l: TrainLengths): PairSequences {
  if (l.truncation === 'reference') return referenceTruncation(prompt, chosen, rejected, l.maxLength, l.maxPromptTokens);
  return { chosen: scoredSequence(prompt, chosen, l.maxLength), rejected: scoredSequence(prompt, rejected, l.maxLength) };
}

export function pairSequences(rows: TrainTableRow[], rollout: Map<number, RolloutRow>, lengths: TrainLengths): PairSequences[] {
  return rows.map((r, i) => {
    const g = rollout.get(r.promptIndex);
    if (!g) throw new Error(`train table row ${i}: prompt ${r.promptIndex} is not in the generated table`);
    const c = g.responseTokens[r.chosenIndex];
    const l = g.responseTokens[r.rejectedIndex];
    if (!c || !l) throw new Error(`train table row ${i}: response index out of range for prompt ${r.promptIndex}`);
    return truncatePair(g.promptTokens, c, l, lengths);
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
