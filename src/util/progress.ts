// A small progress bar: redraws one line on a TTY, stays silent otherwise (logs and CI get the
// stage summaries instead of hundreds of carriage returns).
export interface ProgressBar {
  tick(n?: number): void;
  done(): void;
}

export function progressBar(label: string, total: number, stream: NodeJS.WriteStream = process.stderr): ProgressBar {
  const enabled = Boolean(stream.isTTY) && !process.env.SPPO_NO_PROGRESS;
  let current = 0;
  const start = Date.now();
  let last = 0;
  const draw = (force: boolean): void => {
    if (!enabled) return;
    const now = Date.now();
    if (!force && now - last < 100) return;
    last = now;
    const width = 24;
    const frac = total > 0 ? Math.min(1, current / total) : 1;
    const filled = Math.round(frac * width);
    const secs = (now - start) / 1000;
    const rate = secs > 0 ? current / secs : 0;
    const eta = rate > 0 ? Math.max(0, (total - current) / rate) : 0;
    const line = `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${current}/${total} ${secs.toFixed(0)}s eta ${eta.toFixed(0)}s`;
    stream.write(`\r${line.slice(0, (stream.columns || 100) - 1)}\x1b[K`);
  };
  return {
    tick(n = 1) {
      current += n;
      draw(current >= total);
    },
    done() {
      if (enabled) {
        draw(true);
        stream.write('\n');
      }
    },
  };
}
