// A line while waiting: long waits (a judge loading a model or stuck, a generate call of minutes)
// say so instead of leaving the console silent.
import { progressEveryMs } from './progress.js';

export const WAIT_NOTICE_MS = 30_000;

/**
 * How often a long stage re-sends its progress while nothing finished (the printers throttle the
 * lines): every 5 s, or as often as progress lines are asked for (SPPO_PROGRESS_EVERY), at most
 * every 200 ms.
 */
export function heartbeatMs(): number {
  return Math.max(200, Math.min(5_000, progressEveryMs()));
}

/** Resolves or rejects as `work`; while it is pending, calls `notice(elapsedMs)` every `everyMs`. */
export async function withWaitNotice<T>(work: Promise<T>, everyMs: number, notice: (elapsedMs: number) => void): Promise<T> {
  const t0 = Date.now();
  const timer = setInterval(() => notice(Date.now() - t0), Math.max(1, everyMs));
  timer.unref();
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}
