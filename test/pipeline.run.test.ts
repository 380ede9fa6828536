// Run-folder machinery: atomic writes, the lock, and the learning-rate schedules.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveAtomicDir, writeDirAtomic, writeFileAtomic } from '../src/run/atomic.js';
import { acquireRunLock } from '../src/run/lock.js';
import { learningRate, warmupSteps } from '../src/stages/schedule.js';
import { seededRandom } from './sppo.seed.js';

const root = mkdtempSync(join(tmpdir(), 'sppo-run-'));
const { rand } = seededRandom('pipeline.run');

describe('atomic writes', () => {
  it('replaces a file whole and leaves no temp files', () => {
    const f = join(root, 'a', 'x.json');
    const data = Array.from({ length: 1000 + Math.floor(rand() * 1000) }, () => Math.floor(rand() * 256));
    writeFileAtomic(f, Uint8Array.from(data));
    writeFileAtomic(f, 'second');
    expect(readFileSync(f, 'utf8')).toBe('second');
    expect(readdirSync(join(root, 'a'))).toEqual(['x.json']);
  });

  it('builds folders in a temp folder; a failed build leaves the old one', async () => {
    const d = join(root, 'ckpt');
    await writeDirAtomic(d, async (tmp) => writeFileSync(join(tmp, 'w'), '1'));
    await expect(writeDirAtomic(d, async (tmp) => {
      writeFileSync(join(tmp, 'w'), 'half');
      throw new Error('disk full');
    })).rejects.toThrow('disk full');
    expect(readFileSync(join(d, 'w'), 'utf8')).toBe('1');
    expect(readdirSync(root).filter((n) => n.includes('tmp'))).toEqual([]);
    await writeDirAtomic(d, async (tmp) => writeFileSync(join(tmp, 'w'), '2'));
    expect(readFileSync(join(d, 'w'), 'utf8')).toBe('2');
    expect(resolveAtomicDir(d)).toBe(d);
    expect(resolveAtomicDir(join(root, 'none'))).toBeNull();
  });
});

describe('run lock', () => {
  it('refuses a second owner while the first lives, takes over a dead one', async () => {
    const run = join(root, 'run');
    const lock = acquireRunLock(run);
    expect(() => acquireRunLock(run)).toThrow(new RegExp(`in use by process ${process.pid}`));
    lock.release();
    expect(existsSync(join(run, '.lock'))).toBe(false);
    // A lock left by a process that is gone (SIGKILL leaves the file behind).
    const child = spawn(process.execPath, ['-e', '']);
    const pid = child.pid!;
    await new Promise((r) => child.on('exit', r));
    mkdirSync(run, { recursive: true });
    writeFileSync(join(run, '.lock'), `${pid}\n`);
    const again = acquireRunLock(run);
    expect(readFileSync(join(run, '.lock'), 'utf8')).toContain(String(process.pid));
    again.release();
  });
});

describe('learning-rate schedule', () => {
  it('warms up linearly to the peak, its first step above 0, then follows the chosen shape (transformers definitions after warmup)', () => {
    const total = 10 + Math.floor(rand() * 200);
    const ratio = rand() * 0.3;
    const peak = rand();
    const w = warmupSteps(total, ratio);
    expect(w).toBe(Math.ceil(ratio * total));
    for (let s = 0; s < total; s++) {
      const lin = learningRate('linear', peak, s, total, w);
      const cos = learningRate('cosine', peak, s, total, w);
      const con = learningRate('constant', peak, s, total, w);
      if (s < w) {
        for (const v of [lin, cos, con]) expect(v).toBeCloseTo((peak * (s + 1)) / w, 12);
      } else {
        expect(lin).toBeCloseTo((peak * (total - s)) / (total - w), 12);
        expect(cos).toBeCloseTo(peak * 0.5 * (1 + Math.cos((Math.PI * (s - w)) / (total - w))), 12);
        expect(con).toBe(peak);
      }
    }
    expect(learningRate('linear', 1, 0, 100, 10)).toBeCloseTo(0.1, 15);
  });

  it('gives a single optimizer step (warmup ceil(0.1 * 1) = 1) the peak learning rate, not 0', () => {
    for (const kind of ['linear', 'cosine', 'constant'] as const) {
      expect(learningRate(kind, 5e-7, 0, 1, warmupSteps(1, 0.1))).toBe(5e-7);
      expect(learningRate(kind, 5e-7, 0, 3, warmupSteps(3, 0.1))).toBeGreaterThan(0);
    }
  });
});
