// Temp files and folders left by a killed process (see atomic.ts: `.<name>.tmp-<pid>-<hex>`).
// Called with the run lock held, so none of them can belong to a live writer; removing them keeps
// a run that was interrupted many times from filling the disk with half-written checkpoints.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const TEMP = /^\..+\.tmp-\d+-[0-9a-f]{8}$/;

export function removeStaleTemps(folder: string): number {
  let removed = 0;
  const walk = (dir: string): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (TEMP.test(e.name)) {
        rmSync(p, { recursive: true, force: true });
        removed++;
      } else if (e.isDirectory()) {
        walk(p);
      }
    }
  };
  walk(folder);
  return removed;
}
