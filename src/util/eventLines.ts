// Pipeline events as lines of text, for stderr where no bar can be drawn (a log file, nohup, a
// pipe) and for the run folder's log.txt: stage lines, warnings, one line per optimizer step, the
// iteration summaries, and progress lines (done/total, rate, ETA) at most one per `everyMs` for
// each stage plus its last one.
import type { PipelineEvent } from './events.js';
import { ProgressTracks, progressLine } from './progress.js';

const num = (x: unknown): string => (typeof x === 'number' && Number.isFinite(x) ? x.toPrecision(4) : String(x));

/** "iteration 1 step 3/7: loss 12.34, loss·β² 1.234e-3, margin 0.01234, lr 4.286e-4, grad norm 0.8512, 1234 tokens/s" */
export function stepLine(e: Extract<PipelineEvent, { type: 'step' }>): string {
  const m = e.metrics;
  // loss·β² is the SPPO loss in probability units, (β·s − (p − ½))², comparable across eta.
  const tps = m['tokens/s'];
  return (
    `iteration ${e.iteration} step ${m.step}/${e.totalSteps}: loss ${num(m.loss)}, loss·β² ${num(m.loss! * e.beta * e.beta)}, ` +
    `margin ${num(m['rewards/margins'])}, lr ${num(m.lr)}, grad norm ${num(m.grad_norm)}, ` +
    `${typeof tps === 'number' && Number.isFinite(tps) ? Math.round(tps) : String(tps)} tokens/s`
  );
}

export function winRateLine(e: Extract<PipelineEvent, { type: 'winrate' }>): string {
  return (
    `iteration ${e.iteration}: win rate against the starting policy ${(100 * e.winRate).toFixed(1)}% ` +
    `[95% CI ${(100 * e.low).toFixed(1)}%, ${(100 * e.high).toFixed(1)}%] over ${e.comparisons} comparisons`
  );
}

export function iterationLine(e: Extract<PipelineEvent, { type: 'iteration' }>): string {
  const s = e.summary as { pairs?: number; steps?: number; meanLoss?: number; policy?: string; identicalPairs?: number };
  const same = s.identicalPairs ? `, ${s.identicalPairs} with chosen = rejected` : '';
  return `iteration ${e.iteration}: done (${s.pairs} pairs${same}, ${s.steps} steps, mean loss ${Number(s.meanLoss).toPrecision(4)}) -> ${s.policy}`;
}

export class EventLines {
  private readonly tracks = new ProgressTracks();

  constructor(
    private readonly everyMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The lines `e` shows (none for a progress event between two due lines). */
  lines(e: PipelineEvent): string[] {
    switch (e.type) {
      case 'log':
        return [e.message];
      case 'warning':
        return [`WARNING: ${e.message}`];
      case 'stage':
        if (e.status === 'done') return [];
        return [`iteration ${e.iteration}: ${e.stage} ${e.status === 'start' ? '...' : `skipped (${e.detail ?? 'done'})`}`];
      case 'progress': {
        const now = this.clock();
        const u = this.tracks.update(e, now);
        if (u.first) return []; // the start (the stage line says it); nothing measured yet
        if (!u.finished && u.sinceShown < this.everyMs) return [];
        this.tracks.shown(u.label, now);
        return [progressLine(u)];
      }
      case 'step':
        return [stepLine(e)];
      case 'winrate':
        return [winRateLine(e)];
      case 'iteration':
        return [iterationLine(e)];
    }
  }
}
