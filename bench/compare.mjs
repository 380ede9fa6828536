#!/usr/bin/env node
// Joins the native kernel benchmark and the PyTorch baseline (same card, same run) into one
// ratio table: node bench/compare.mjs native.json pytorch.json [--json out.json]
import { readFileSync, writeFileSync, existsSync } from 'node:fs';

const args = process.argv.slice(2);
const jsonAt = args.indexOf('--json');
const outJson = jsonAt >= 0 ? args[jsonAt + 1] : undefined;
const [nativePath, torchPath] = args.filter((_, i) => i !== jsonAt && i !== jsonAt + 1);
if (!nativePath) {
  console.error('usage: node bench/compare.mjs native.json [pytorch.json] [--json out.json]');
  process.exit(1);
}
const nat = JSON.parse(readFileSync(nativePath, 'utf8'));
const torch = torchPath && existsSync(torchPath) ? JSON.parse(readFileSync(torchPath, 'utf8')) : null;
// The issue's targets (H200, 8 x 1024 rows, bf16): 1.3x the floor.
const TARGET_X_FLOOR = 1.3;

const rows = [];
console.log(`card: ${nat.deviceName}   native copy bandwidth ${nat.copyBandwidthGBs.toFixed(0)} GB/s` +
  (torch ? `   pytorch ${torch.torch} copy bandwidth ${torch.copyBandwidthGBs.toFixed(0)} GB/s` : '   (no PyTorch baseline)'));
console.log(`${'shape'.padEnd(14)} ${'dtype'.padEnd(5)} ${'sppo ms'.padStart(9)} ${'floor ms'.padStart(9)} ${'x floor'.padStart(8)} ${'target'.padStart(7)}  pytorch (ms, speedup of sppo-native)`);
for (const r of nat.results) {
  const base = torch ? torch.results.filter((t) => t.vocab === r.vocab && t.rows === r.rows && t.dtype === r.dtype) : [];
  const cmp = base.map((t) => (t.totalMs ? `${t.variant} ${t.totalMs.toFixed(3)} (${(t.totalMs / r.totalMs).toFixed(2)}x)` : `${t.variant} ${t.error ?? '-'}`));
  const meets = r.ratio <= TARGET_X_FLOOR ? 'met' : 'missed';
  console.log(`${`${r.rows}x${r.vocab}`.padEnd(14)} ${r.dtype.padEnd(5)} ${r.totalMs.toFixed(3).padStart(9)} ${r.floorMs.toFixed(3).padStart(9)} ${r.ratio.toFixed(2).padStart(8)} ${meets.padStart(7)}  ${cmp.join('; ') || '-'}`);
  rows.push({ ...r, target: `<= ${TARGET_X_FLOOR}x floor`, met: r.ratio <= TARGET_X_FLOOR, pytorch: base });
}
if (outJson) {
  writeFileSync(outJson, `${JSON.stringify({ card: nat.deviceName, native: nativePath, pytorch: torchPath ?? null, rows }, null, 2)}\n`);
  console.log(`wrote ${outJson}`);
}
