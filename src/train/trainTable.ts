// train.parquet: the reference columns (chosen, rejected, chosen_probs, chosen_probs_win,
// chosen_probs_lose) from src/sppo/, plus prompt_index / chosen_index / rejected_index so that
// training uses the exact sampled token ids rather than a re-tokenization of the text.
import type { Pairing } from '../sppo/pairs.js';
import { selectPairs } from '../sppo/pairs.js';
import { conversation } from '../sppo/trainTable.js';
import { readParquet, writeParquet, type ColumnSpec, type Message } from '../data/parquet.js';
import type { JudgedRow } from './judgeStage.js';

export interface TrainTableRow {
  promptIndex: number;
  chosenIndex: number;
  rejectedIndex: number;
  chosen: Message[];
  rejected: Message[];
  chosenProbs: number;
  chosenProbsWin: number;
  chosenProbsLose: number;
}

export function buildTrainRows(judged: JudgedRow[], pairing: Pairing): TrainTableRow[] {
  const rows: TrainTableRow[] = [];
  for (const j of judged) {
    for (const p of selectPairs(j.probability, j.scores, pairing, `prompt ${j.promptIndex}`)) {
      rows.push({
        promptIndex: j.promptIndex,
        chosenIndex: p.chosen,
        rejectedIndex: p.rejected,
        chosen: conversation(j.prompt, j.responses[p.chosen]!),
        rejected: conversation(j.prompt, j.responses[p.rejected]!),
        chosenProbs: p.chosenProbs,
        chosenProbsWin: p.chosenProbsWin,
        chosenProbsLose: p.chosenProbsLose,
      });
    }
  }
  return rows;
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
    chosen: r.chosen as Message[],
    rejected: r.rejected as Message[],
    chosenProbs: r.chosen_probs as number,
    chosenProbsWin: r.chosen_probs_win as number,
    chosenProbsLose: r.chosen_probs_lose as number,
  }));
}
