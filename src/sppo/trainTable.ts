// Rows of the training table, with the reference columns (UCLA-AGI/SPPO scripts/compute_prob.py):
// chosen and rejected are message lists [{content: prompt, role: 'user'}, {content: response,
// role: 'assistant'}] (the `generate_i` format), chosen_probs = P_wl, chosen_probs_win = p_w,
// chosen_probs_lose = p_l.
import type { Judgment } from '../judge/types.js';
import { selectPairs, type Pairing } from './pairs.js';

export interface ChatMessage {
  content: string;
  role: 'user' | 'assistant';
}

export interface TrainRow {
  chosen: ChatMessage[];
  rejected: ChatMessage[];
  chosen_probs: number;
  chosen_probs_win: number;
  chosen_probs_lose: number;
}

/** The reference `generate_i` cell: one user turn, one assistant turn. */
export function conversation(prompt: string, response: string): ChatMessage[] {
  return [
    { content: prompt, role: 'user' },
    { content: response, role: 'assistant' },
  ];
}

/** Training rows for one prompt; `what` names the prompt in errors (e.g. "prompt 12"). */
export function trainRows(
  prompt: string,
  responses: readonly string[],
  judgment: Judgment,
  pairing: Pairing,
  what = 'train rows',
): TrainRow[] {
  if (judgment.probability.length !== responses.length) {
    throw new Error(`${what}: the judgment has a ${judgment.probability.length}x${judgment.probability.length} matrix for ${responses.length} responses`);
  }
  return selectPairs(judgment.probability, judgment.scores, pairing, what).map((p) => ({
    chosen: conversation(prompt, responses[p.chosen]!),
    rejected: conversation(prompt, responses[p.rejected]!),
    chosen_probs: p.chosenProbs,
    chosen_probs_win: p.chosenProbsWin,
    chosen_probs_lose: p.chosenProbsLose,
  }));
}
