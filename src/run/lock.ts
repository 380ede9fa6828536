// One process per run folder: a lock file holding the owner's pid. A lock left by a process that
// no longer exists (killed with SIGKILL) is taken over; a live owner gets a clear error.
import { openSync, closeSync, readFileSync, rmSync, writeSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';

export interface RunLock {
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function acquireRunLock(folder: string): RunLock {
  mkdirSync(folder, { recursive: true });
  const file = join(folder, '.lock');
  const me = `${process.pid} ${hostname()}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, me);
      closeSync(fd);
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        process.off('exit', release);
        try {
          if (readFileSync(file, 'utf8') === me) rmSync(file, { force: true });
        } catch {
          /* already gone */
        }
      };
      process.once('exit', release);
      return { release };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = '';
      try {
        owner = readFileSync(file, 'utf8');
      } catch {
        continue; // removed between our open and read: try again
      }
      const [pidText, host] = owner.trim().split(/\s+/);
      const pid = Number(pidText);
      const sameHost = !host || host === hostname();
      if (Number.isInteger(pid) && pid > 0 && sameHost && !alive(pid)) {
        rmSync(file, { force: true }); // stale: its owner died
        continue;
      }
      if (!Number.isInteger(pid) || pid <= 0) {
        // A torn lock (the owner died while writing it); treat as stale.
        rmSync(file, { force: true });
        continue;
      }
      throw new Error(
        `run folder ${folder} is in use by process ${pid}${host ? ` on ${host}` : ''} (lock file ${file}); ` +
          'wait for it to finish, or delete the lock file if that process is gone',
      );
    }
  }
  throw new Error(`could not take the lock ${file}`);
}
