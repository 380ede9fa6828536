#!/usr/bin/env node
// Joins `bench_pairrm --device cuda --json` reports (sppo-native, fp32 or bf16) and
// bench/pytorch_pairrm.py reports (transformers' DebertaV2 + PairRM's head, same card, same run)
// into one ratio row per native row (issue 11): pairs/s, the distance from the floor (the FLOPs at
// the matmul rate measured in the run), our speedup over PyTorch for the same mode and pair length
// (single: one pair per forward, llm-blender's batch; batched: several), and the anchor ratio: the
// anchor's 20.8k prompts x 20 pairs at the row's pairs/s, and its 5e17 FLOP at the row's FLOP rate,
// each over its 28 minutes (target <= 1.5x).
//   node bench/compare-pairrm.mjs native-pairrm.json pytorch-pairrm-*.json [--json out.json]
// Each file says what it is ("source": "native" or "pytorch").
import { reportMain } from './report-cli.mjs';

// Issue 11's anchor (also in native/bench/bench_pairrm_work.h, which writes it into its report).
export const ANCHOR = { prompts: 20800, pairsPerPrompt: 20, flops: 5e17, tflops: 300, targetRatio: 1.5 };
export const anchorPairs = () => ANCHOR.prompts * ANCHOR.pairsPerPrompt;
export const anchorSeconds = () => ANCHOR.flops / (ANCHOR.tflops * 1e12);

/** The anchor's time at a rate, over the anchor's time: by pairs/s (its pairs) and by TFLOP/s (its FLOPs). */
export function anchorRatios(pairsPerSecond, tflops) {
  const byPairs = anchorPairs() / pairsPerSecond / anchorSeconds();
  const byFlops = tflops > 0 ? ANCHOR.flops / (tflops * 1e12) / anchorSeconds() : null;
  return {
    byPairs, byFlops,
    meetsByPairs: byPairs <= ANCHOR.targetRatio,
    meetsByFlops: byFlops === null ? null : byFlops <= ANCHOR.targetRatio,
  };
}

// A native row's PyTorch mode: one pair per call is llm-blender's single mode, anything else batched.
const modeOf = (row) => (row.pairsPerCall === 1 ? 'single' : 'batched');

export function comparePairRm(reports) {
  const pairrm = reports.filter((r) => r.suite === 'pairrm');
  const natives = pairrm.filter((r) => r.source === 'native');
  const torches = pairrm.filter((r) => r.source === 'pytorch');
  const rows = [];
  for (const nat of natives)
    for (const r of nat.results ?? []) {
      const mode = modeOf(r);
      const pytorch = torches
        .filter((t) => t.mode === mode && t.tokensPerPair === r.tokensPerPair && t.pairsPerSecond > 0)
        .map((t) => ({
          dtype: t.dtype, mode: t.mode, pairsPerCall: t.pairsPerCall, pairsPerSecond: t.pairsPerSecond,
          speedup: r.pairsPerSecond / t.pairsPerSecond, sameBatch: t.pairsPerCall === r.pairsPerCall,
          // The same pairs counted the same way: their FLOP rate from our count of a pair's FLOPs.
          tflops: r.flopsPerPair ? (t.pairsPerSecond * r.flopsPerPair) / 1e12 : null,
        }));
      rows.push({
        device: nat.deviceName, precision: nat.precision, name: r.name, label: r.label, mode,
        tokensPerPair: r.tokensPerPair, pairsPerCall: r.pairsPerCall, pairsPerSecond: r.pairsPerSecond, tflops: r.tflops,
        ms: r.ms, floorMs: r.floorMs, xFloor: r.xFloor, peakBytes: r.peakBytes,
        anchor: anchorRatios(r.pairsPerSecond, r.tflops), pytorch,
      });
    }
  return { natives, torches, rows };
}

const fmt = (x, d = 2) => (x === undefined || x === null || !Number.isFinite(x) ? '-' : x.toFixed(d));

export function formatPairRmTable({ natives, torches, rows }) {
  const out = [];
  const min = (anchorSeconds() / 60).toFixed(1);
  for (const n of natives)
    out.push(`sppo-native PairRM (${n.precision}) on ${n.deviceName}: ${n.precision} matmul ${fmt(n.matmulTflops, 1)} TFLOP/s (${n.matmulCompute ?? '?'})`);
  for (const t of torches) out.push(`pytorch ${t.torch} / transformers ${t.transformers} on ${t.device}: ${t.dtype}, ${t.mode}, ${t.pairsPerCall} pair(s) per forward, ${t.tokensPerPair} tokens a pair`);
  if (torches.length === 0) out.push('(no PyTorch baseline)');
  out.push(`anchor (issue 11): ${ANCHOR.prompts} prompts x ${ANCHOR.pairsPerPrompt} pairs, ${ANCHOR.flops.toExponential(1)} FLOP = ${min} min at ${ANCHOR.tflops} TFLOP/s; target <= ${ANCHOR.targetRatio}x`);
  out.push(`${'row'.padEnd(44)} ${'pairs/s'.padStart(9)} ${'TFLOP/s'.padStart(8)} ${'x floor'.padStart(8)}  ${'anchor x (pairs)'.padStart(16)} ${'anchor x (FLOP)'.padStart(15)}  vs pytorch (their pairs/s, our speedup)`);
  for (const r of rows) {
    const vs = r.pytorch.map((t) => `${t.dtype} ${t.mode} ${fmt(t.pairsPerSecond, 1)} (${fmt(t.speedup)}x${t.sameBatch ? '' : `, they ${t.pairsPerCall}/forward`})`);
    const a = (x, ok) => `${fmt(x)} ${ok === null ? '' : ok ? 'met' : 'missed'}`;
    out.push(`${`${r.precision} ${r.label ?? r.name}`.slice(0, 44).padEnd(44)} ${fmt(r.pairsPerSecond, 1).padStart(9)} ${fmt(r.tflops, 1).padStart(8)} ${fmt(r.xFloor).padStart(8)}  ${a(r.anchor.byPairs, r.anchor.meetsByPairs).padStart(16)} ${a(r.anchor.byFlops, r.anchor.meetsByFlops).padStart(15)}  ${vs.join('; ') || '-'}`);
  }
  out.push('anchor x (pairs): the anchor\'s pairs at the row\'s pairs/s (like for like only for rows of the anchor\'s pair length); anchor x (FLOP): its FLOPs at the row\'s FLOP rate.');
  return out.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  reportMain(process.argv.slice(2), {
    usage: 'node bench/compare-pairrm.mjs native-pairrm.json [pytorch-pairrm-*.json ...] [--json out.json]',
    name: 'compare-pairrm',
    noNative: 'bench_pairrm --device cuda --json',
    compare: comparePairRm,
    format: formatPairRmTable,
  });
}
