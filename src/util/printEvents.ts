// How the CLI shows pipeline events: results (win rates) on stdout; everything else on stderr.
// On a terminal, progress is a bar redrawn in place; elsewhere (a log file, nohup, a pipe) it is a
// line every SPPO_PROGRESS_EVERY seconds per stage plus the stage's last (src/util/eventLines.ts).
// SPPO_NO_PROGRESS=1 hides progress (bars and progress lines; step lines stay).
import type { EventSink } from './events.js';
import { EventLines } from './eventLines.js';
import { ProgressTracks, progressBarText, progressEveryMs } from './progress.js';

export interface PrintOptions {
  /** Draw bars (default: whether `err` is a terminal). */
  tty?: boolean;
  /** Show progress at all (default: unless SPPO_NO_PROGRESS is set). */
  progress?: boolean;
  /** Progress lines when not on a terminal: at most one per this many ms per stage. */
  everyMs?: number;
  clock?: () => number;
}

export function printEvents(
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
  o: PrintOptions = {},
): EventSink {
  const tty = o.tty ?? Boolean((err as NodeJS.WriteStream).isTTY);
  const progress = o.progress ?? !process.env.SPPO_NO_PROGRESS;
  const clock = o.clock ?? Date.now;
  const lines = new EventLines(o.everyMs ?? progressEveryMs(), clock);
  const bars = new ProgressTracks();
  let barShown = false;
  let lastDraw = 0;
  const clearBar = (): void => {
    if (barShown) err.write('\r\x1b[K');
    barShown = false;
  };
  return (e) => {
    if (e.type === 'progress') {
      if (!progress) return;
      if (tty) {
        const now = clock();
        const u = bars.update(e, now);
        if (u.first && u.finished) return; // nothing to do (finished before a resume)
        if (!u.finished && now - lastDraw < 100) return;
        lastDraw = now;
        err.write(`\r${progressBarText(u, (err as NodeJS.WriteStream).columns || 100)}\x1b[K`);
        barShown = !u.finished;
        if (u.finished) err.write('\n');
        return;
      }
    }
    const text = lines.lines(e);
    if (text.length === 0) return;
    clearBar();
    const to = e.type === 'winrate' ? out : err;
    for (const l of text) to.write(`${l}\n`);
  };
}
