// Progress events shared by the API operations (train, generate, judge, eval). The CLI prints
// them (src/util/printEvents.ts) and the run folder's log.txt records them (src/run/runLog.ts);
// programmatic callers pass `onEvent` and get the same stream.
export type ProgressUnit = 'samples' | 'prompts' | 'pairs' | 'steps' | 'comparisons';

export type PipelineEvent =
  | { type: 'log'; message: string }
  /** Something the user most likely did not intend (a run that trains nothing, a cut context). */
  | { type: 'warning'; message: string }
  | { type: 'stage'; iteration: number; stage: string; status: 'start' | 'done' | 'skipped'; detail?: string }
  /** `done` of `total` units of a stage; the first event of a stage carries the work already done. */
  | { type: 'progress'; iteration: number; stage: string; done: number; total: number; unit: ProgressUnit }
  /** One optimizer step: `metrics` is its metrics.jsonl line; beta = 1/eta of the loss. */
  | { type: 'step'; iteration: number; totalSteps: number; beta: number; metrics: Record<string, number> }
  | { type: 'winrate'; iteration: number; winRate: number; low: number; high: number; comparisons: number }
  | { type: 'iteration'; iteration: number; summary: Record<string, unknown> };

export type EventSink = (event: PipelineEvent) => void;

export const noEvents: EventSink = () => {};

/** One sink that feeds several. */
export function teeEvents(...sinks: EventSink[]): EventSink {
  return (e) => {
    for (const s of sinks) s(e);
  };
}

/** Emits the first progress event of a stage (`done` units already done) and returns the tick for the rest. */
export function progressTicker(
  onEvent: EventSink,
  where: { iteration: number; stage: string; unit: ProgressUnit },
  total: number,
  done = 0,
): (n: number) => void {
  const emit = (): void => onEvent({ type: 'progress', iteration: where.iteration, stage: where.stage, done, total, unit: where.unit });
  emit();
  return (n) => {
    done += n;
    emit();
  };
}
