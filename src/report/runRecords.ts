// What the TensorBoard file and the report page show, read from a run folder's own records:
// iter-<t>/metrics.jsonl (steps), train.done.json (the step plan), summary.json and eval.json
// (per iteration), stage-times.json (written by the run reports), train.parquet and
// judged.parquet (samples). Nothing here changes the run folder.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readParquet, type Message } from '../data/parquet.js';
import { writeFileAtomic } from '../run/atomic.js';
import type { WinRate } from '../eval/stats.js';

export type StepLine = Record<string, number>;

export interface StageTimes {
  [stage: string]: number; // seconds
}

export interface SampleRow {
  prompt: string;
  chosen: string;
  rejected: string;
  pWin: number;       // chosen_probs_win: P(chosen beats pi_t)
  pLose: number;      // chosen_probs_lose: P(rejected beats pi_t)
  pChosen: number;    // chosen_probs: P(chosen beats rejected)
  scoreChosen: number | null;
  scoreRejected: number | null;
}

export const iterDir = (out: string, t: number): string => join(out, `iter-${t}`);

export function readStepLines(out: string, t: number): StepLine[] {
  const f = join(iterDir(out, t), 'metrics.jsonl');
  if (!existsSync(f)) return [];
  const lines: StepLine[] = [];
  for (const l of readFileSync(f, 'utf8').split('\n')) {
    if (l.trim() === '') continue;
    try {
      lines.push(JSON.parse(l) as StepLine);
    } catch {
      // A torn last line of a killed run: training rewrites it on resume.
    }
  }
  return lines;
}

/** Optimizer steps of a finished training stage (train.done.json), or null. */
export function plannedSteps(out: string, t: number): number | null {
  const f = join(iterDir(out, t), 'train.done.json');
  if (!existsSync(f)) return null;
  const plan = JSON.parse(readFileSync(f, 'utf8')) as { totalSteps?: number };
  return typeof plan.totalSteps === 'number' ? plan.totalSteps : null;
}

/** Steps of all iterations before `t` (so that steps count on across iterations). */
export function stepOffset(out: string, t: number): number {
  let n = 0;
  for (let i = 1; i < t; i++) n += plannedSteps(out, i) ?? readStepLines(out, i).length;
  return n;
}

function readJson<T>(file: string): T | null {
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

export const readWinRate = (out: string, t: number): WinRate | null => readJson<WinRate>(join(iterDir(out, t), 'eval.json'));
export const readIterationSummary = (out: string, t: number): Record<string, unknown> | null => readJson(join(iterDir(out, t), 'summary.json'));

const stageTimesFile = (out: string, t: number): string => join(iterDir(out, t), 'stage-times.json');
export const readStageTimes = (out: string, t: number): StageTimes => readJson<StageTimes>(stageTimesFile(out, t)) ?? {};

/** Records the seconds a stage took (the attempt that finished it). */
export function recordStageTime(out: string, t: number, stage: string, seconds: number): void {
  const times = readStageTimes(out, t);
  times[stage] = seconds;
  writeFileAtomic(stageTimesFile(out, t), `${JSON.stringify(times)}\n`);
}

const assistant = (m: unknown): string => (Array.isArray(m) ? ((m as Message[]).find((x) => x.role === 'assistant')?.content ?? '') : '');
const user = (m: unknown): string => (Array.isArray(m) ? ((m as Message[]).find((x) => x.role === 'user')?.content ?? '') : '');

const sampleCache = new Map<string, { mtimeMs: number; rows: SampleRow[] }>();

/** The first `limit` training pairs of iteration t with their judge scores (cached by file time). */
export async function readSamples(out: string, t: number, limit: number): Promise<SampleRow[]> {
  const trainFile = join(iterDir(out, t), 'train.parquet');
  if (!existsSync(trainFile)) return [];
  const mtimeMs = statSync(trainFile).mtimeMs;
  const key = `${trainFile}#${limit}`;
  const hit = sampleCache.get(key);
  if (hit && hit.mtimeMs === mtimeMs) return hit.rows;
  const train = (await readParquet(trainFile)).rows.slice(0, limit);
  const judgedFile = join(iterDir(out, t), 'judged.parquet');
  const scores = new Map<number, number[] | null>();
  if (existsSync(judgedFile)) {
    for (const r of (await readParquet(judgedFile)).rows) scores.set(r.prompt_index as number, (r.rm_scores as number[] | null) ?? null);
  }
  const rows = train.map((r): SampleRow => {
    const s = scores.get(r.prompt_index as number) ?? null;
    return {
      prompt: user(r.chosen),
      chosen: assistant(r.chosen),
      rejected: assistant(r.rejected),
      pWin: r.chosen_probs_win as number,
      pLose: r.chosen_probs_lose as number,
      pChosen: r.chosen_probs as number,
      scoreChosen: s ? (s[r.chosen_index as number] ?? null) : null,
      scoreRejected: s ? (s[r.rejected_index as number] ?? null) : null,
    };
  });
  sampleCache.set(key, { mtimeMs, rows });
  return rows;
}
