// Atomic file and folder writes: a temp file in the same folder, fsync, rename, fsync the folder.
// A reader (or a resumed run) sees either the old file or the whole new one, never a torn one.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync, existsSync, mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fsError, isFsError } from '../util/fsErrors.js';

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic there.
  }
}

export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = tempPathFor(path);
  try {
    mkdirSync(dirname(path), { recursive: true });
    const fd = openSync(tmp, 'w');
    try {
      const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    // A failed write (a full disk) leaves no temp file, and says which file it was.
    rmSync(tmp, { force: true });
    throw fsError(err, 'write', path);
  }
  fsyncDir(dirname(path));
}

/**
 * Builds a folder at `path` atomically: `build` fills a temp folder next to it, which is then
 * renamed into place (replacing an older one). Used for checkpoints and resume states.
 */
export async function writeDirAtomic(path: string, build: (tmpDir: string) => Promise<void>): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  mkdirSync(tmp);
  try {
    await build(tmp);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    // A system error (a full disk) from the builder names no file: name the folder.
    throw isFsError(err) && !(err as Error).message.includes(path) ? fsError(err, 'write', path) : err;
  }
  const old = `${path}.old`;
  if (existsSync(path)) {
    rmSync(old, { recursive: true, force: true });
    renameSync(path, old);
  }
  renameSync(tmp, path);
  fsyncDir(dirname(path));
  rmSync(old, { recursive: true, force: true });
}

/** The folder written by writeDirAtomic, or its predecessor when a crash hit between renames. */
export function resolveAtomicDir(path: string): string | null {
  if (existsSync(path)) return path;
  if (existsSync(`${path}.old`)) return `${path}.old`;
  return null;
}
