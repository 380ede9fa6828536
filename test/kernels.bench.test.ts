// The kernel benchmark's plumbing (not its speed): both sources produce the table and a JSON
// report with consistent derived columns, and bad options are refused.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultOut, nativeBenchPath, runKernelBench, type KernelBenchReport } from '../src/bench/kernels.js';

const dir = mkdtempSync(join(tmpdir(), 'sppo-kbench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function checkReport(r: KernelBenchReport, rows: number, vocab: number[]): void {
  expect(r.suite).toBe('kernels');
  expect(r.results.map((x) => x.vocab)).toEqual(vocab);
  for (const x of r.results) {
    expect(x.rows).toBe(rows);
    expect(x.totalMs).toBeGreaterThan(0);
    const bytes = 3 * x.rows * x.vocab * (x.dtype === 'f32' ? 4 : 2);
    const rel = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);
    expect(rel(x.gbps, bytes / (x.totalMs * 1e6))).toBeLessThan(1e-5);
    expect(rel(x.floorMs, bytes / (r.copyBandwidthGBs * 1e6))).toBeLessThan(1e-5);
    expect(rel(x.ratio, x.totalMs / x.floorMs)).toBeLessThan(1e-5);
  }
}

describe('bench kernels', () => {
  it('times through the addon and writes JSON', async () => {
    const out = join(dir, 'addon.json');
    const lines: string[] = [];
    const r = await runKernelBench({ via: 'addon', rows: 8, vocab: [300, 1000], dtypes: ['f32'], iters: 1, warmup: 0, out, log: (l) => lines.push(l) });
    checkReport(r, 8, [300, 1000]);
    expect(lines.join('\n')).toMatch(/8x1000\s+f32/);
    const saved = JSON.parse(readFileSync(out, 'utf8')) as KernelBenchReport;
    expect(saved.results).toHaveLength(2);
    expect(saved.source).toBe('addon');
  });

  it.skipIf(!nativeBenchPath())('runs the native benchmark executable (skipped where none is built)', async () => {
    const out = join(dir, 'native.json');
    const r = await runKernelBench({ via: 'native', rows: 4, vocab: [500], dtypes: ['bf16', 'f32'], iters: 1, warmup: 0, out, log: () => {} });
    expect(r.source).toBe('native');
    checkReport(r, 4, [500, 500]);
  });

  it('refuses bad options and names the default output', async () => {
    await expect(runKernelBench({ via: 'addon', rows: 0, out: join(dir, 'x.json') })).rejects.toThrow(/rows must be a positive integer/);
    await expect(runKernelBench({ via: 'addon', dtypes: ['f16' as never], out: join(dir, 'x.json') })).rejects.toThrow(/dtype must be bf16 or f32/);
    expect(defaultOut(new Date('2026-11-27T12:00:00Z'))).toBe(join('bench', 'out', 'kernels-2026-11-27.json'));
  });
});
