// Progress events shared by the API operations (train, generate, judge, eval). The CLI prints
// them; programmatic callers pass `onEvent` and get the same stream.
export type PipelineEvent =
  | { type: 'log'; message: string }
  | { type: 'stage'; iteration: number; stage: string; status: 'start' | 'done' | 'skipped'; detail?: string }
  | { type: 'progress'; iteration: number; stage: string; done: number; total: number }
  | { type: 'step'; iteration: number; metrics: Record<string, number> }
  | { type: 'winrate'; iteration: number; winRate: number; low: number; high: number; comparisons: number }
  | { type: 'iteration'; iteration: number; summary: Record<string, unknown> };

export type EventSink = (event: PipelineEvent) => void;

export const noEvents: EventSink = () => {};
