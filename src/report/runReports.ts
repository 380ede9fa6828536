// The run's reports, fed by its progress events: <output>/tb/ (a TensorBoard event file, written
// as steps and iterations finish) and <output>/report.html (rewritten after each iteration, after
// a stage unless it was rewritten in the last 2 s, every 5 s during a stage, and at the end).
// Both are views of the run's records; a failure to write them is logged and never stops the run.
import { join } from 'node:path';
import type { Recipe } from '../recipe/types.js';
import type { EventSink, PipelineEvent } from '../util/events.js';
import { EventFileWriter } from './eventFile.js';
import { iterationScalars, stepScalars } from './tensorboardScalars.js';
import { readStageTimes, readWinRate, recordStageTime, stepOffset, type StepLine } from './runRecords.js';
import { writeReport, type RunStatus } from './reportPage.js';

export const TENSORBOARD_DIR = 'tb';
export const REPORT_FILE = 'report.html';
/** The page is rewritten at most this often during a stage (steps, progress) ... */
export const REPORT_STEP_INTERVAL_MS = 5000;
/** ... and after a stage (so that runs of quick stages do not spend their time rewriting it). */
export const REPORT_STAGE_INTERVAL_MS = 2000;

export interface RunReports {
  onEvent: EventSink;
  /** Resolves when the page writes asked for so far are done. */
  settled(): Promise<void>;
  /** Writes the last report page and closes the event file. */
  close(status: RunStatus): Promise<void>;
}

export function openRunReports(out: string, recipe: Recipe, downstream: EventSink): RunReports {
  const eta = recipe.sppo.eta;
  const warned = new Set<string>();
  const warn = (what: string, err: unknown): void => {
    if (warned.has(what)) return;
    warned.add(what);
    downstream({ type: 'log', message: `run reports: ${what} failed (${(err as Error).message}); the run goes on` });
  };
  let tb: EventFileWriter | null = null;
  try {
    tb = EventFileWriter.open(join(out, TENSORBOARD_DIR), (message) => downstream({ type: 'log', message }));
  } catch (err) {
    warn('opening the TensorBoard file', err);
  }
  const tbWrite = (step: number, values: [string, number][]): void => {
    if (!tb) return;
    try {
      tb.write({ wallTime: Date.now() / 1000, step, values });
    } catch (err) {
      warn('writing the TensorBoard file', err);
    }
  };

  const reportFile = join(out, REPORT_FILE);
  let chain: Promise<void> = Promise.resolve();
  let queued = false;
  let lastWrite = 0;
  const refresh = (status: RunStatus = 'running'): Promise<void> => {
    if (queued) return chain;
    queued = true;
    chain = chain.then(async () => {
      queued = false;
      lastWrite = Date.now();
      try {
        await writeReport(out, reportFile, recipe, status);
      } catch (err) {
        warn('writing report.html', err);
      }
    });
    return chain;
  };

  const started = new Map<string, number>();
  const offsets = new Map<number, number>();
  const offsetOf = (t: number): number => {
    let o = offsets.get(t);
    if (o === undefined) offsets.set(t, (o = stepOffset(out, t)));
    return o;
  };

  const handle = (e: PipelineEvent): void => {
    switch (e.type) {
      case 'stage': {
        const key = `${e.iteration}:${e.stage}`;
        if (e.status === 'start') started.set(key, Date.now());
        else if (e.status === 'done') {
          const t0 = started.get(key);
          if (t0 !== undefined) {
            try {
              recordStageTime(out, e.iteration, e.stage, (Date.now() - t0) / 1000);
            } catch (err) {
              warn('recording stage times', err);
            }
          }
          if (Date.now() - lastWrite >= REPORT_STAGE_INTERVAL_MS) void refresh();
        }
        break;
      }
      case 'progress':
        if (Date.now() - lastWrite >= REPORT_STEP_INTERVAL_MS) void refresh();
        break;
      case 'step': {
        const line = e.metrics as StepLine;
        tbWrite(offsetOf(e.iteration) + (line.step ?? 0), stepScalars(line, eta));
        if (Date.now() - lastWrite >= REPORT_STEP_INTERVAL_MS) void refresh();
        break;
      }
      case 'iteration': {
        let scalars: [string, number][] = [];
        try {
          scalars = iterationScalars({ summary: e.summary, winRate: readWinRate(out, e.iteration), stageTimes: readStageTimes(out, e.iteration) }, eta);
        } catch (err) {
          warn('reading the iteration records', err);
        }
        tbWrite(e.iteration, scalars);
        void refresh();
        break;
      }
      default:
        break;
    }
  };

  void refresh();
  return {
    onEvent: (e) => {
      handle(e);
      downstream(e);
    },
    settled: () => chain,
    async close(status) {
      await chain;
      await refresh(status);
      tb?.close();
      tb = null;
    },
  };
}
