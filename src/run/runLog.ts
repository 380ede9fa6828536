// log.txt of an output folder: every event of a command as a timestamped line (progress lines at
// most every SPPO_PROGRESS_EVERY seconds per stage), appended, so a run's progress, warnings and
// failure can be read later whatever the terminal showed. A rerun appends to it.
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { EventSink } from '../util/events.js';
import { EventLines } from '../util/eventLines.js';
import { progressEveryMs } from '../util/progress.js';

export const LOG_FILE = 'log.txt';

export interface RunLog {
  readonly file: string;
  sink: EventSink;
  /** A line of its own (the failure, a signal). */
  note(line: string): void;
  close(): void;
}

/** Logs open in this process: signal handlers note the stop in each (src/cli/main.ts). */
const open = new Set<RunLog>();

export function noteInOpenLogs(line: string): void {
  for (const l of open) l.note(line);
}

/** `fileName`: another log of the folder (a data-parallel rank other than 0 writes its own). */
export function openRunLog(folder: string, command: string, everyMs = progressEveryMs(), fileName = LOG_FILE): RunLog {
  mkdirSync(folder, { recursive: true });
  const file = join(folder, fileName);
  const lines = new EventLines(everyMs);
  let broken = false;
  const write = (text: string[]): void => {
    if (broken || text.length === 0) return;
    const stamp = new Date().toISOString();
    try {
      appendFileSync(file, text.map((l) => `${stamp} ${l.replace(/\n/g, `\n${' '.repeat(stamp.length + 1)}`)}\n`).join(''));
    } catch {
      // A log that cannot be written (disk full) must not end the run; the work reports its own errors.
      broken = true;
    }
  };
  const log: RunLog = {
    file,
    sink: (e) => write(lines.lines(e)),
    note: (line) => write([line]),
    close: () => {
      open.delete(log);
    },
  };
  open.add(log);
  write([`--- sppo-native ${command} (pid ${process.pid}) in ${folder}`]);
  return log;
}
