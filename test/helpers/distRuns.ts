// Helpers of the data-parallel suites: run the CLI (one process, the launcher, or ranks started by
// hand with launcher variables), and compare what two run folders hold.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const root = join(import.meta.dirname, '..', '..');
export const bin = join(root, 'bin', 'sppo-native.js');

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
  ms: number;
}

export interface Running {
  child: ReturnType<typeof spawn>;
  done: Promise<Ran>;
  /** Resolves when stderr has matched `re` (with the match). */
  waitFor(re: RegExp): Promise<RegExpMatchArray>;
  err(): string;
}

export function start(args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const t0 = Date.now();
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: root,
    env: { ...process.env, SPPO_NO_PROGRESS: '1', OMP_NUM_THREADS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    for (const w of [...waiters]) {
      const m = err.match(w.re);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  const done = new Promise<Ran>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, out, err, ms: Date.now() - t0 }));
  });
  return {
    child,
    done,
    err: () => err,
    waitFor: (re) =>
      new Promise((resolve, reject) => {
        const m = err.match(re);
        if (m) return resolve(m);
        waiters.push({ re, resolve });
        void done.then(() => reject(new Error(`the process ended before its output matched ${re}:\n${err}`)));
      }),
  };
}

export function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return start(args, env).done;
}

/** `world` ranks started by hand, as torchrun or a Kubernetes operator would (rank 0 hosts the store). */
export function runRanks(world: number, args: (rank: number) => string[], port: number, extra: NodeJS.ProcessEnv = {}): Promise<Ran[]> {
  return Promise.all(
    Array.from({ length: world }, (_, r) =>
      run(args(r), { ...extra, RANK: String(r), WORLD_SIZE: String(world), LOCAL_RANK: String(r), LOCAL_WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) }),
    ),
  );
}

/** A free TCP port: the ports tests use, spread by pid so that parallel suites do not meet. */
let nextPort = 20000 + (process.pid % 20000);
export function freePort(): number {
  nextPort += 7;
  return nextPort;
}

export function readSafetensors(file: string): Map<string, Float32Array> {
  const b = readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const out = new Map<string, Float32Array>();
  for (const [k, v] of Object.entries(header)) {
    if (k === '__metadata__') continue;
    const [s, e] = v.data_offsets;
    const bytes = b.subarray(8 + n + s, 8 + n + e);
    out.set(k, new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
  }
  return out;
}

export function metrics(dir: string, iteration: number): Record<string, number>[] {
  const f = join(dir, `iter-${iteration}`, 'metrics.jsonl');
  return readFileSync(f, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, number>);
}

export const TABLES = ['generated.parquet', 'judged.parquet', 'train.parquet', 'ref_logprobs.parquet'];

export function sameBytes(a: string, b: string): boolean {
  return existsSync(a) && existsSync(b) && readFileSync(a).equals(readFileSync(b));
}

/**
 * Largest |a - b| over every tensor and the largest |a - base| (how far training moved); and the
 * same as L2 norms over the whole model.
 */
export function weightGap(a: string, b: string, base: string): { gap: number; moved: number; l2gap: number; l2moved: number } {
  const wa = readSafetensors(a);
  const wb = readSafetensors(b);
  const w0 = readSafetensors(base);
  let gap = 0;
  let moved = 0;
  let g2 = 0;
  let m2 = 0;
  for (const [k, x] of wa) {
    const y = wb.get(k)!;
    const z = w0.get(k)!;
    for (let i = 0; i < x.length; i++) {
      gap = Math.max(gap, Math.abs(x[i]! - y[i]!));
      moved = Math.max(moved, Math.abs(x[i]! - z[i]!));
      g2 += (x[i]! - y[i]!) ** 2;
      m2 += (x[i]! - z[i]!) ** 2;
    }
  }
  return { gap, moved, l2gap: Math.sqrt(g2), l2moved: Math.sqrt(m2) };
}
