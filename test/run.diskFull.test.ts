// A full disk is reported with the file that could not be written (Node's own ENOSPC error from a
// write names none), and leaves no temp file behind (issue 12, item 9). The write is made to fail
// through a mock of node:fs, since a real full file system cannot be mounted here.
import { describe, expect, it, vi } from 'vitest';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const full = { on: false };
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const writeSync = ((...args: Parameters<typeof fs.writeSync>) => {
    if (full.on) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
    return (fs.writeSync as (...a: unknown[]) => number)(...args);
  }) as typeof fs.writeSync;
  return { ...fs, writeSync, default: { ...fs, writeSync } };
});

describe('a full disk', () => {
  it('names the file it could not write', async () => {
    const { writeFileAtomic } = await import('../src/run/atomic.js');
    const dir = mkdtempSync(join(tmpdir(), 'sppo-full-'));
    full.on = true;
    try {
      expect(() => writeFileAtomic(join(dir, 'summary.json'), '{}')).toThrow(`cannot write ${join(dir, 'summary.json')}: no space left on the device (ENOSPC)`);
    } finally {
      full.on = false;
    }
    expect(readdirSync(dir)).toEqual([]);
    writeFileAtomic(join(dir, 'summary.json'), '{}');
    expect(readdirSync(dir)).toEqual(['summary.json']);
  });
});
