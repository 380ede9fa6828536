// `sppo-native bench kernels`: times log-probability forward + in-place backward. Runs the native
// benchmark executable (build/bench/bench_logprob, CUDA-event timed on a GPU) when the build has
// one; otherwise times the kernels through the addon (wall clock). Prints a table and writes JSON.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { packageRoot, requireDevice, type DeviceName } from '../native/addon.js';
import { logprobBackward, logprobForward } from '../kernels/logprob.js';
import { f32ToBf16 } from '../kernels/bf16.js';

export type KernelDType = 'bf16' | 'f32';

export interface KernelBenchOptions {
  device?: DeviceName;
  /** Rows (sequences x tokens). Default: 8192 (8 x 1024) on CUDA, 512 on CPU. */
  rows?: number;
  vocab?: number[];
  dtypes?: KernelDType[];
  iters?: number;
  warmup?: number;
  /** JSON output path; default bench/out/kernels-<date>.json. */
  out?: string;
  /** 'native' = the benchmark executable, 'addon' = through Node; 'auto' prefers native. */
  via?: 'auto' | 'native' | 'addon';
  log?: (line: string) => void;
}

export interface KernelBenchRow {
  rows: number;
  vocab: number;
  dtype: KernelDType;
  fwdMs: number;
  bwdMs: number;
  totalMs: number;
  gbps: number;
  floorMs: number;
  ratio: number;
}

export interface KernelBenchReport {
  suite: 'kernels';
  source: 'native' | 'addon';
  date: string;
  device: DeviceName;
  deviceName: string;
  copyBandwidthGBs: number;
  iters: number;
  warmup: number;
  results: KernelBenchRow[];
  out?: string;
}

/** The benchmark executable next to the addon in use, or in build/bench. */
export function nativeBenchPath(): string | undefined {
  const candidates: string[] = [];
  const addon = process.env.SPPO_ADDON_PATH;
  if (addon) candidates.push(join(dirname(dirname(resolve(addon))), 'bench', 'bench_logprob'));
  candidates.push(join(packageRoot, 'build', 'bench', 'bench_logprob'));
  return candidates.find((p) => existsSync(p));
}

export function defaultOut(now = new Date()): string {
  return join('bench', 'out', `kernels-${now.toISOString().slice(0, 10)}.json`);
}

function checkOptions(o: KernelBenchOptions): Required<Omit<KernelBenchOptions, 'out' | 'log'>> {
  const device = o.device ?? 'cpu';
  requireDevice(device);
  const rows = o.rows ?? (device === 'cuda' ? 8192 : 512);
  const vocab = o.vocab ?? [32000, 128256];
  const dtypes = o.dtypes ?? ['bf16', 'f32'];
  const iters = o.iters ?? (device === 'cuda' ? 20 : 3);
  const warmup = o.warmup ?? (device === 'cuda' ? 3 : 1);
  for (const [name, v] of [['rows', rows], ['iters', iters], ...vocab.map((x) => ['vocab', x] as const)] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer (got ${String(v)})`);
  }
  if (!Number.isSafeInteger(warmup) || warmup < 0) throw new RangeError(`warmup must be a non-negative integer (got ${warmup})`);
  for (const d of dtypes) if (d !== 'bf16' && d !== 'f32') throw new RangeError(`dtype must be bf16 or f32 (got '${String(d)}')`);
  const via = o.via ?? 'auto';
  if (!['auto', 'native', 'addon'].includes(via)) throw new RangeError(`via must be auto, native or addon (got '${via}')`);
  return { device, rows, vocab, dtypes, iters, warmup, via };
}

export function formatTable(r: KernelBenchReport): string {
  const lines = [
    `sppo-native bench kernels (${r.source}): logprob forward + in-place backward`,
    `device: ${r.deviceName}   copy bandwidth: ${r.copyBandwidthGBs.toFixed(1)} GB/s (read + write)   median of ${r.iters} after ${r.warmup} warmup`,
    `${'shape'.padEnd(16)} ${'dtype'.padEnd(5)} ${'fwd ms'.padStart(10)} ${'bwd ms'.padStart(10)} ${'fwd+bwd ms'.padStart(12)} ${'GB/s'.padStart(9)} ${'floor ms'.padStart(10)} ${'x floor'.padStart(8)}`,
  ];
  for (const x of r.results) {
    lines.push(
      `${`${x.rows}x${x.vocab}`.padEnd(16)} ${x.dtype.padEnd(5)} ${x.fwdMs.toFixed(3).padStart(10)} ${x.bwdMs.toFixed(3).padStart(10)} ` +
        `${x.totalMs.toFixed(3).padStart(12)} ${x.gbps.toFixed(1).padStart(9)} ${x.floorMs.toFixed(3).padStart(10)} ${x.ratio.toFixed(2).padStart(8)}`,
    );
  }
  return lines.join('\n');
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

function runNative(exe: string, o: ReturnType<typeof checkOptions>, log: (l: string) => void): KernelBenchReport {
  const dir = mkdtempSync(join(tmpdir(), 'sppo-bench-'));
  try {
    const json = join(dir, 'kernels.json');
    const args = ['--device', o.device, '--rows', String(o.rows), '--vocab', o.vocab.join(','), '--dtype', o.dtypes.join(','),
      '--iters', String(o.iters), '--warmup', String(o.warmup), '--json', json];
    const r = spawnSync(exe, args, { encoding: 'utf8' });
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`${exe} failed (exit ${r.status}): ${(r.stderr || r.stdout).trim()}`);
    log(r.stdout.trimEnd().split('\n').filter((l) => !l.startsWith('wrote ')).join('\n'));
    return JSON.parse(readFileSync(json, 'utf8')) as KernelBenchReport;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runAddon(o: ReturnType<typeof checkOptions>, log: (l: string) => void): Promise<KernelBenchReport> {
  // Copy bandwidth of this process (TypedArray.set of 256 MiB), read + write bytes.
  const probe = 256 * 2 ** 20;
  const a = new Uint8Array(probe).fill(1);
  const b = new Uint8Array(probe);
  const copies: number[] = [];
  for (let i = 0; i < 4; i++) {
    const t0 = performance.now();
    b.set(a);
    if (i > 0) copies.push(performance.now() - t0);
  }
  const bw = (2 * probe) / (median(copies) * 1e6);
  const results: KernelBenchRow[] = [];
  for (const vocab of o.vocab) {
    for (const dtype of o.dtypes) {
      const n = o.rows * vocab;
      const logits = dtype === 'f32' ? new Float32Array(n) : new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        const x = 6 * ((i * 2654435761) % 4096) / 4096 - 3;
        logits[i] = dtype === 'f32' ? x : f32ToBf16(x);
      }
      const labels = Int32Array.from({ length: o.rows }, (_, r) => (r * 7919) % vocab);
      const gradToken = new Float32Array(o.rows).fill(1 / o.rows);
      const fwd: number[] = [];
      const bwd: number[] = [];
      for (let i = 0; i < o.warmup + o.iters; i++) {
        const t0 = performance.now();
        const { lse } = await logprobForward({ logits, rows: o.rows, vocab, labels, dtype, device: o.device });
        const t1 = performance.now();
        await logprobBackward({ logits, rows: o.rows, vocab, labels, dtype, gradToken, lse, inPlace: true, device: o.device });
        const t2 = performance.now();
        if (i >= o.warmup) {
          fwd.push(t1 - t0);
          bwd.push(t2 - t1);
        }
      }
      const bytes = 3 * n * (dtype === 'f32' ? 4 : 2);
      const fwdMs = median(fwd);
      const bwdMs = median(bwd);
      const totalMs = fwdMs + bwdMs;
      results.push({ rows: o.rows, vocab, dtype, fwdMs, bwdMs, totalMs, gbps: bytes / (totalMs * 1e6), floorMs: bytes / (bw * 1e6), ratio: (totalMs * bw * 1e6) / bytes });
    }
  }
  const report: KernelBenchReport = {
    suite: 'kernels', source: 'addon', date: new Date().toISOString(), device: o.device,
    deviceName: o.device === 'cuda' ? 'CUDA device 0 (through the addon: includes host<->device copies)' : 'CPU (through the addon)',
    copyBandwidthGBs: bw, iters: o.iters, warmup: o.warmup, results,
  };
  log(formatTable(report));
  return report;
}

export async function runKernelBench(options: KernelBenchOptions = {}): Promise<KernelBenchReport> {
  const log = options.log ?? ((l: string) => console.log(l));
  const o = checkOptions(options);
  const exe = o.via === 'addon' ? undefined : nativeBenchPath();
  if (o.via === 'native' && !exe) {
    throw new Error('the native benchmark executable was not found (build/bench/bench_logprob); build with CMake or use --via addon');
  }
  const report = exe ? runNative(exe, o, log) : await runAddon(o, log);
  const out = resolve(options.out ?? defaultOut());
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  log(`wrote ${out}`);
  return { ...report, out };
}
