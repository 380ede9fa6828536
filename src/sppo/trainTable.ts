// The training table (train.parquet): the reference columns (UCLA-AGI/SPPO scripts/compute_prob.py)
// chosen and rejected (message lists), chosen_probs = P_wl, chosen_probs_win = p_w,
// chosen_probs_lose = p_l; plus prompt_index / chosen_index / rejected_index so that training
// uses the exact sampled token ids rather than a re-tokenization of the text.
import type { Judgment } from '../judge/types.js';
import { conversation, type ChatMessage } from '../data/messages.js';
import { readParquet, writeParquet, type ColumnSpec } from '../data/parquet.js';
import { selectPairs, type Pairing } from './pairs.js';

export interface TrainTableRow {
  promptIndex: number;
  chosenIndex: number;
  rejectedIndex: number;
  chosen: ChatMessage[];
  rejected: ChatMessage[];
  chosenProbs: number;
  chosenProbsWin: number;
  chosenProbsLose: number;
}

/** One prompt's judged responses: what pairing needs. */
export interface JudgedPrompt extends Judgment {
  promptIndex: number;
  prompt: string;
  responses: readonly string[];
}

/** Training rows of one prompt; errors name it as `prompt <index>`. */
export function trainRows(j: JudgedPrompt, pairing: Pairing): TrainTableRow[] {
  const what = `prompt ${j.promptIndex}`;
  if (j.probability.length !== j.responses.length) {
    throw new Error(`${what}: the judgment has a ${j.probability.length}x${j.probability.length} matrix for ${j.responses.length} responses`);
  }
  return selectPairs(j.probability, j.scores, pairing, what).map((p) => ({
    promptIndex: j.promptIndex,
    chosenIndex: p.chosen,
    rejectedIndex: p.rejected,
    chosen: conversation(j.prompt, j.responses[p.chosen]!),
    rejected: conversation(j.prompt, j.responses[p.rejected]!),
    chosenProbs: p.chosenProbs,
    chosenProbsWin: p.chosenProbsWin,
    chosenProbsLose: p.chosenProbsLose,
  }));
}

export function buildTrainRows(judged: readonly JudgedPrompt[], pairing: Pairing): TrainTableRow[] {
  return judged.flatMap((j) => trainRows(j, pairing));
}

export function writeTrainTable(file: string, rows: TrainTableRow[]): void {
  const cols: ColumnSpec[] = [
    { name: 'chosen', kind: 'messages', data: rows.map((r) => r.chosen) },
    { name: 'rejected', kind: 'messages', data: rows.map((r) => r.rejected) },
    { name: 'chosen_probs', kind: 'double', data: rows.map((r) => r.chosenProbs) },
    { name: 'chosen_probs_win', kind: 'double', data: rows.map((r) => r.chosenProbsWin) },
    { name: 'chosen_probs_lose', kind: 'double', data: rows.map((r) => r.chosenProbsLose) },
    { name: 'prompt_index', kind: 'int', data: rows.map((r) => r.promptIndex) },
    { name: 'chosen_index', kind: 'int', data: rows.map((r) => r.chosenIndex) },
    { name: 'rejected_index', kind: 'int', data: rows.map((r) => r.rejectedIndex) },
  ];
  writeParquet(file, cols);
}

export async function readTrainTable(file: string): Promise<TrainTableRow[]> {
  const t = await readParquet(file);
  for (const c of ['chosen', 'rejected', 'chosen_probs', 'chosen_probs_win', 'chosen_probs_lose', 'prompt_index', 'chosen_index', 'rejected_index']) {
    if (!t.columns.includes(c)) throw new Error(`${file}: column '${c}' is missing (columns: ${t.columns.join(', ')})`);
  }
  return t.rows.map((r) => ({
    promptIndex: r.prompt_index as number,
    chosenIndex: r.chosen_index as number,
    rejectedIndex: r.rejected_index as number,
    chosen: r.chosen as ChatMessage[],
    rejected: r.rejected as ChatMessage[],
    chosenProbs: r.chosen_probs as number,
    chosenProbsWin: r.chosen_probs_win as number,
    chosenProbsLose: r.chosen_probs_lose as number,
  }));
}
