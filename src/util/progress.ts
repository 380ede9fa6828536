// Progress of a stage: rate and ETA measured from the stage's first progress event (which carries
// the work already done, e.g. shards finished before a resume, so a resumed stage's rate counts
// only what this process did), and its two renderings: a line of text (logs, pipes, nohup) and a
// bar redrawn in place on a terminal.
import type { PipelineEvent, ProgressUnit } from './events.js';

type ProgressEvent = Extract<PipelineEvent, { type: 'progress' }>;

/** Where one stage's progress started. */
interface Track {
  t0: number;
  done0: number;
  /** When a line was last shown for this stage. */
  shown: number;
}

export interface ProgressUpdate {
  label: string;
  done: number;
  total: number;
  unit: ProgressUnit;
  /** The stage's first event (nothing measured yet). */
  first: boolean;
  /** done >= total: the stage's last event. */
  finished: boolean;
  /** ms since the stage's last shown line (or its start). */
  sinceShown: number;
  /** units per second over this process's share of the stage; 0 before any. */
  rate: number;
  elapsedS: number;
  etaS: number | null;
}

export function progressLabel(iteration: number, stage: string): string {
  return iteration > 0 ? `iteration ${iteration} ${stage}` : stage;
}

/** The progress state of every stage in flight, keyed by its label. */
export class ProgressTracks {
  private readonly tracks = new Map<string, Track>();

  update(e: ProgressEvent, now: number): ProgressUpdate {
    const label = progressLabel(e.iteration, e.stage);
    let t = this.tracks.get(label);
    const first = !t || e.done < t.done0; // a stage run again (a second eval pass) starts over
    if (first || !t) this.tracks.set(label, (t = { t0: now, done0: e.done, shown: now }));
    const finished = e.done >= e.total;
    const elapsedS = (now - t.t0) / 1000;
    const rate = elapsedS > 0 ? (e.done - t.done0) / elapsedS : 0;
    const etaS = rate > 0 ? Math.max(0, (e.total - e.done) / rate) : null;
    const u: ProgressUpdate = { label, done: e.done, total: e.total, unit: e.unit, first, finished, sinceShown: now - t.shown, rate, elapsedS, etaS };
    if (finished) this.tracks.delete(label);
    return u;
  }

  /** Records that a line was shown for `label` at `now`. */
  shown(label: string, now: number): void {
    const t = this.tracks.get(label);
    if (t) t.shown = now;
  }
}

export function formatDuration(secs: number): string {
  if (secs < 9.95) return `${Math.max(0, secs).toFixed(1)}s`;
  const s = Math.round(secs);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

const rateText = (u: ProgressUpdate): string => `${u.rate >= 100 ? u.rate.toFixed(0) : u.rate.toPrecision(3)} ${u.unit}/s`;

/** "iteration 1 rollout: 120/640 samples (19%), 3.20 samples/s, elapsed 37s, ETA 2m 43s" */
export function progressLine(u: ProgressUpdate): string {
  if (u.finished) return `${u.label}: ${u.done}/${u.total} ${u.unit} done in ${formatDuration(u.elapsedS)}${u.rate > 0 ? ` (${rateText(u)})` : ''}`;
  const pct = u.total > 0 ? Math.floor((100 * u.done) / u.total) : 100;
  const eta = u.etaS === null ? 'ETA unknown' : `ETA ${formatDuration(u.etaS)}`;
  return `${u.label}: ${u.done}/${u.total} ${u.unit} (${pct}%), ${u.rate > 0 ? rateText(u) : 'rate unknown'}, elapsed ${formatDuration(u.elapsedS)}, ${eta}`;
}

/** "iteration 1 rollout [#######.................] 120/640 37s eta 2m 43s", cut to `columns`. */
export function progressBarText(u: ProgressUpdate, columns: number): string {
  const width = 24;
  const frac = u.total > 0 ? Math.min(1, u.done / u.total) : 1;
  const filled = Math.round(frac * width);
  const eta = u.finished ? '' : ` eta ${u.etaS === null ? '?' : formatDuration(u.etaS)}`;
  const line = `${u.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${u.done}/${u.total} ${u.unit} ${formatDuration(u.elapsedS)}${eta}`;
  return line.slice(0, Math.max(10, columns - 1));
}

/**
 * How often a progress line is printed where no bar can be drawn (and in log.txt): every
 * SPPO_PROGRESS_EVERY seconds (default 30; 0 prints every update).
 */
export function progressEveryMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.SPPO_PROGRESS_EVERY;
  const v = raw === undefined || raw.trim() === '' ? NaN : Number(raw);
  return Number.isFinite(v) && v >= 0 ? v * 1000 : 30_000;
}
