#!/usr/bin/env node
// Joins `bench_model --device cuda --json` reports (sppo-native, fp32 or bf16) and
// bench/pytorch_model_gpu.py reports (same card, same run) into one ratio table per row:
// tokens/s, the distance from the floor, the speedup over each PyTorch variant (eager fp32 is like
// for like with the fp32 engine; eager bf16 autocast and torch.compile, the issues' baselines, with
// the bf16 engine), and the issues' own figures and targets (context: another day's run).
//   node bench/compare-model.mjs native-*.json pytorch-*.json [--json out.json]
// Each file says what it is ("source": "native" or "pytorch"); rows match on preset and kind.
import { reportMain } from './report-cli.mjs';

// The issues' figures (H200, bf16 baselines) and targets, in tokens/s.
export const ISSUE = {
  'llama-1b': {
    train: { figures: { 'HF eager autocast': 47.6e3, 'torch.compile': 65.1e3 }, target: 75e3, issue: 8 },
    rollout: { figures: { 'HF generate': 698 }, target: 17.5e3, issue: 9 },
  },
  'mistral-7b': { train: { figures: { 'HF eager (108.5 GiB peak)': 7.6e3 }, issue: 8 } },
  'llama-8b': { decode: { issue: 9, note: 'target: the floor, (weights + KV bytes read) / 4.3 TB/s' } },
};

const fmt = (x, d = 1) => (x === undefined || x === null || !Number.isFinite(x) ? '-' : x.toFixed(d));
const kTok = (x) => (x >= 1e4 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0));

export function compareModel(reports) {
  const natives = reports.filter((r) => r.source === 'native');
  const torches = reports.filter((r) => r.source === 'pytorch');
  const rows = [];
  for (const nat of natives)
    for (const r of nat.results) {
      const base = torches
        .filter((t) => t.preset === nat.preset && t.hidden === nat.hidden && t.layers === nat.layers)
        .flatMap((t) => t.results.filter((x) => x.name === r.name).map((x) => ({ ...x, torch: t.torch })));
      const vs = {};
      for (const b of base) {
        if (b.error || !b.tokensPerSecond) vs[b.variant] = { error: b.error ?? 'no figure' };
        else {
          const sameShape = r.name !== 'train' || (b.pairs === r.pairs && b.seq === r.seq);
          vs[b.variant] = { tokensPerSecond: b.tokensPerSecond, speedup: r.tokensPerSecond / b.tokensPerSecond, peakBytes: b.peakBytes ?? null, sameShape };
        }
      }
      const issue = ISSUE[nat.preset]?.[r.name];
      const issueVs = Object.fromEntries(Object.entries(issue?.figures ?? {}).map(([k, v]) => [k, r.tokensPerSecond / v]));
      rows.push({
        preset: nat.preset, name: r.name, label: r.label, precision: nat.precision, ms: r.ms, tokensPerSecond: r.tokensPerSecond,
        peakBytes: r.peakBytes, floorMs: r.floorMs, xFloor: r.xFloor, floorMsIssue: r.floorMsIssue ?? null,
        floorMsIssueBf16: r.floorMsIssueBf16 ?? null,
        // decode rows: the step bucketed with eager launches and replayed as a CUDA graph (device events)
        eagerBucketMs: r.eagerBucketMs ?? null, graphMs: r.graphMs ?? null, graphGain: r.graphGain ?? null,
        target: issue?.target ?? null, meetsTarget: issue?.target ? r.tokensPerSecond >= issue.target : null,
        pytorch: vs, issueFigures: issue?.figures ?? {}, vsIssueFigures: issueVs,
      });
    }
  return { natives, torches, rows };
}

export function formatModelTable({ natives, torches, rows }) {
  const out = [];
  for (const n of natives)
    out.push(`sppo-native ${n.preset} (${n.precision}) on ${n.deviceName}: copy ${fmt(n.copyBandwidthGBs, 0)} GB/s, ${n.precision} matmul ${fmt(n.matmulTflops)} TFLOP/s (${n.matmulCompute})`);
  for (const t of torches) out.push(`pytorch ${t.torch} / transformers ${t.transformers} ${t.preset} on ${t.deviceName}`);
  if (torches.length === 0) out.push('(no PyTorch baseline)');
  out.push(`${'row'.padEnd(40)} ${'tok/s'.padStart(9)} ${'x floor'.padStart(8)} ${'peak GiB'.padStart(9)}  vs pytorch (their tok/s, our speedup)  | vs the issue's figures`);
  for (const r of rows) {
    const vs = Object.entries(r.pytorch).map(([v, x]) =>
      x.error ? `${v} ${x.error}` : `${v} ${kTok(x.tokensPerSecond)} (${fmt(x.speedup, 2)}x${x.sameShape ? '' : ', other shape'})`);
    const iss = Object.entries(r.vsIssueFigures).map(([k, s]) => `${k} ${kTok(r.issueFigures[k])} (${fmt(s, 2)}x)`);
    if (r.target) iss.push(`target ${kTok(r.target)}: ${r.meetsTarget ? 'met' : 'missed'}`);
    if (r.graphMs) iss.push(`CUDA graph ${fmt(r.graphMs, 3)} ms (${fmt(r.graphGain, 2)}x the eager step; bucketed eager ${fmt(r.eagerBucketMs, 3)} ms)`);
    if (r.floorMsIssue) iss.push(`floor at 4.3 TB/s ${fmt(r.floorMsIssue, 3)} ms (${fmt(r.ms / r.floorMsIssue, 2)}x; bf16 bytes ${fmt(r.floorMsIssueBf16, 3)} ms)`);
    out.push(`${`${r.preset} ${r.label}`.slice(0, 40).padEnd(40)} ${kTok(r.tokensPerSecond).padStart(9)} ${fmt(r.xFloor, 2).padStart(8)} ${fmt(r.peakBytes / 2 ** 30, 2).padStart(9)}  ${vs.join('; ') || '-'}  | ${iss.join('; ') || '-'}`);
  }
  const precisions = [...new Set(natives.map((n) => n.precision))];
  out.push(`sppo-native ran ${precisions.join(' and ')}: the like-for-like ratio is eager-fp32 for fp32 rows and eager-bf16 (autocast) for bf16 rows; compile-bf16 and the issue figures are bf16.`);
  return out.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  reportMain(process.argv.slice(2), {
    usage: 'node bench/compare-model.mjs native.json [more.json ...] [--json out.json]',
    name: 'compare-model',
    noNative: 'bench_model --device cuda --json',
    compare: compareModel,
    format: formatModelTable,
  });
}
