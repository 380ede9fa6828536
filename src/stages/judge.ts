// Judge stage: each rollout shard gets a judged shard (prompt, generate_k, probability = the K x K
// matrix, rm_scores = the judge's scores or null), written atomically; a rerun skips finished
// shards. Then judged.parquet merges them, with the reference columns.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Judge, Judgment } from '../judge/types.js';
import { validateMatrix, validateScores } from '../judge/matrix.js';
import { readParquet, writeParquet, type ColumnSpec, type Message } from '../data/parquet.js';
import { readRollout, shardCount, shardName, type RolloutRow } from './rollout.js';
import { formatDuration } from '../util/progress.js';
import { conversation } from '../data/messages.js';
import { WAIT_NOTICE_MS, withWaitNotice } from '../util/waitNotice.js';
import { noEvents, type EventSink } from '../util/events.js';

export interface JudgedRow {
  promptIndex: number;
  prompt: string;
  responses: string[];
  probability: number[][];
  scores: number[] | null;
}

export function judgedColumns(rows: JudgedRow[]): ColumnSpec[] {
  const k = rows[0]?.responses.length ?? 0;
  const cols: ColumnSpec[] = [
    { name: 'prompt', kind: 'string', data: rows.map((r) => r.prompt) },
    { name: 'prompt_index', kind: 'int', data: rows.map((r) => r.promptIndex) },
  ];
  for (let j = 0; j < k; j++) {
    cols.push({
      name: `generate_${j}`,
      kind: 'messages',
      data: rows.map((r) => conversation(r.prompt, r.responses[j]!)),
    });
  }
  cols.push({ name: 'probability', kind: 'matrix', data: rows.map((r) => r.probability) });
  cols.push({ name: 'rm_scores', kind: 'doubles', data: rows.map((r) => r.scores) });
  return cols;
}

export async function readJudged(file: string): Promise<JudgedRow[]> {
  const t = await readParquet(file);
  for (const c of ['prompt', 'prompt_index', 'probability', 'rm_scores', 'generate_0']) {
    if (!t.columns.includes(c)) throw new Error(`${file} is not a judged table of sppo-native: column '${c}' is missing (columns: ${t.columns.join(', ')})`);
  }
  let k = 0;
  while (t.columns.includes(`generate_${k}`)) k++;
  return t.rows.map((r) => ({
    promptIndex: r.prompt_index as number,
    prompt: r.prompt as string,
    responses: Array.from({ length: k }, (_, j) => (r[`generate_${j}`] as Message[]).find((m) => m.role === 'assistant')?.content ?? ''),
    probability: r.probability as number[][],
    scores: (r.rm_scores as number[] | null) ?? null,
  }));
}

export interface JudgeProgress {
  /** After each answered batch, with its number of prompts. */
  tick?: (prompts: number) => void;
  /** Every `waitNoticeMs` (default 30 s) while a batch is unanswered. */
  waiting?: (w: { elapsedMs: number; judge: string; firstPrompt: number; lastPrompt: number }) => void;
  waitNoticeMs?: number;
}

/** Judges rollout rows, checking every answer; errors name the judge and the prompt. */
export async function judgeRows(judge: Judge, rows: RolloutRow[], batch: number, p: JudgeProgress = {}): Promise<JudgedRow[]> {
  const out: JudgedRow[] = [];
  for (let b = 0; b < rows.length; b += batch) {
    const chunk = rows.slice(b, b + batch);
    let answers: Judgment[];
    try {
      const asked = judge.judge(chunk.map((r) => ({ prompt: r.prompt, responses: r.responses, index: r.promptIndex })));
      const first = chunk[0]!.promptIndex;
      const last = chunk[chunk.length - 1]!.promptIndex;
      answers = p.waiting
        ? await withWaitNotice(asked, p.waitNoticeMs ?? WAIT_NOTICE_MS, (elapsedMs) => p.waiting!({ elapsedMs, judge: judge.name, firstPrompt: first, lastPrompt: last }))
        : await asked;
    } catch (err) {
      const msg = (err as Error).message;
      throw new Error(`prompts ${chunk[0]!.promptIndex}..${chunk[chunk.length - 1]!.promptIndex}: ${msg.includes(judge.name) ? msg : `judge '${judge.name}': ${msg}`}`);
    }
    if (!Array.isArray(answers) || answers.length !== chunk.length) {
      throw new Error(`judge '${judge.name}' returned ${Array.isArray(answers) ? answers.length : 'no'} judgments for ${chunk.length} prompts`);
    }
    chunk.forEach((r, i) => {
      const a = answers[i]!;
      const what = `judge '${judge.name}', prompt ${r.promptIndex}`;
      validateMatrix(a.probability as unknown, what, r.responses.length);
      if (a.scores !== null && a.scores !== undefined) validateScores(a.scores as unknown, what, r.responses.length);
      out.push({ promptIndex: r.promptIndex, prompt: r.prompt, responses: r.responses, probability: a.probability, scores: a.scores ?? null });
    });
    p.tick?.(chunk.length);
  }
  return out;
}

export interface JudgeStage {
  judge: () => Promise<Judge>;
  dir: string;        // reads dir/rollout/, writes dir/judged/
  prompts: number;    // in shards of shardSize, as the rollout
  shardSize: number;
  output: string;     // judged.parquet
  iteration: number;
  batch: number;
  onEvent?: EventSink;
  /** Waiting on the judge: a line every this many ms (default 30 s). */
  waitNoticeMs?: number;
  /** Added to the waiting line (e.g. when the judge times out). */
  waitHint?: string;
  /** Data parallel: the shards this process judges (default: all). */
  owns?: (shard: number) => boolean;
  /** Merge the judged shards into `output` (default true). */
  merge?: boolean;
}

export async function runJudgeStage(s: JudgeStage): Promise<void> {
  const onEvent = s.onEvent ?? noEvents;
  const judgedDir = join(s.dir, 'judged');
  mkdirSync(judgedDir, { recursive: true });
  const shards = shardCount(s.prompts, s.shardSize);
  const shardPrompts = (i: number): number => Math.min(s.shardSize, s.prompts - i * s.shardSize);
  const owns = s.owns ?? (() => true);
  let done = 0;
  let total = 0;
  for (let i = 0; i < shards; i++) {
    if (!owns(i)) continue;
    total += shardPrompts(i);
    if (existsSync(join(judgedDir, shardName(i)))) done += shardPrompts(i);
  }
  const progress = (): void => onEvent({ type: 'progress', iteration: s.iteration, stage: 'judge', done, total, unit: 'prompts' });
  progress();
  const hooks: JudgeProgress = {
    tick: (n) => {
      done += n;
      progress();
    },
    waiting: (w) =>
      onEvent({
        type: 'log',
        message: `iteration ${s.iteration} judge: waiting on judge '${w.judge}' for ${formatDuration(w.elapsedMs / 1000)} (prompts ${w.firstPrompt}..${w.lastPrompt})${s.waitHint ? `; ${s.waitHint}` : ''}`,
      }),
    waitNoticeMs: s.waitNoticeMs,
  };
  for (let i = 0; i < shards; i++) {
    const file = join(judgedDir, shardName(i));
    if (owns(i) && !existsSync(file)) {
      const { rows } = await readRollout(join(s.dir, 'rollout', shardName(i)));
      let judged: JudgedRow[];
      try {
        judged = await judgeRows(await s.judge(), rows, s.batch, hooks);
      } catch (err) {
        throw new Error(
          `iteration ${s.iteration}, judging shard ${i + 1} of ${shards}: ${(err as Error).message}\n` +
            `(finished shards are kept in ${judgedDir}; fix the judge and rerun the same command to resume. ` +
            `A different --judge is accepted while no shard of this iteration has been judged: delete ${judgedDir} first if some were)`,
        );
      }
      writeParquet(file, judgedColumns(judged));
    }
  }
  if (s.merge === false) return;
  const all: JudgedRow[] = [];
  for (let i = 0; i < shards; i++) all.push(...(await readJudged(join(judgedDir, shardName(i)))));
  writeParquet(s.output, judgedColumns(all));
}
