// `sppo-native bench pairrm`: throughput of the PairRM judge's model through the addon, on the CPU
// (fp32) or CUDA (fp32, or bf16 where the engine has it): all K(K-1) ordered pairs of `prompts`
// prompts (random token ids in PairRM's pair layout, random weights in PairRM's shape or a tiny
// one), packed `batch` pairs per call as the judge runs them. Reports pairs/s and seconds per
// prompt (wall clock: compare() returns the logits on the host). Measured here, never in tests;
// the native build/bench/bench_pairrm has the floors, CUDA events and the anchor ratio.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { native, requireCublasLt, requireDevice, type DeviceName, type NativePairRmConfig } from '../native/addon.js';
import { packPairs } from '../pairrm/batching.js';
import type { PairSequence } from '../pairrm/collator.js';
import { SeededRandom } from '../util/rng.js';

export type PairRmBenchSize = 'large' | 'tiny';

/** PairRM as released (DeBERTa-v3-large) and a tiny model of the same structure. */
const SIZES: Record<PairRmBenchSize, NativePairRmConfig> = {
  large: {
    vocabSize: 128005, hiddenSize: 1024, intermediateSize: 4096, numLayers: 24, numHeads: 16, headDim: 64, layerNormEps: 1e-7,
    positionBuckets: 256, maxRelativePositions: 512, c2p: true, p2c: true, normRelEmbeddings: true, numTasks: 1,
  },
  tiny: {
    vocabSize: 1000, hiddenSize: 128, intermediateSize: 512, numLayers: 2, numHeads: 4, headDim: 32, layerNormEps: 1e-7,
    positionBuckets: 256, maxRelativePositions: 512, c2p: true, p2c: true, normRelEmbeddings: true, numTasks: 1,
  },
};

export type PairRmBenchPrecision = 'fp32' | 'bf16' | 'fp16';

export interface PairRmBenchOptions {
  size?: PairRmBenchSize;
  device?: DeviceName;
  /** fp32 (default); bf16 or fp16 on CUDA only (the CPU's 16-bit modes are emulations for parity checks). */
  precision?: PairRmBenchPrecision;
  k?: number;
  prompts?: number;
  sourceTokens?: number;
  candidateTokens?: number;
  batch?: number;
}

export interface PairRmBenchResult {
  size: PairRmBenchSize;
  config: NativePairRmConfig;
  device: DeviceName;
  /** 'CPU' or the CUDA card's name. */
  deviceName: string;
  precision: PairRmBenchPrecision;
  threads: number;
  k: number;
  prompts: number;
  pairs: number;
  tokensPerPair: number;
  batch: number;
  seconds: number;
  pairsPerSecond: number;
  secondsPerPrompt: number;
}

export async function benchPairRm(o: PairRmBenchOptions = {}): Promise<PairRmBenchResult> {
  const size = o.size ?? 'large';
  const k = o.k ?? 5, prompts = o.prompts ?? 1, src = o.sourceTokens ?? 128, cand = o.candidateTokens ?? 256, batch = o.batch ?? 4;
  for (const [name, v] of Object.entries({ k, prompts, sourceTokens: src, candidateTokens: cand, batch })) {
    if (!Number.isInteger(v) || v < 1 || (name === 'k' && v < 2)) throw new Error(`bench pairrm: ${name} must be an integer >= ${name === 'k' ? 2 : 1} (got ${v})`);
  }
  const config = SIZES[size];
  const rng = new SeededRandom(7);
  const text = (n: number): number[] => Array.from({ length: n }, () => 4 + Math.floor(rng.uniform() * (config.vocabSize - 9)));
  const [s, c1, c2] = [config.vocabSize - 4, config.vocabSize - 3, config.vocabSize - 2];
  const seqs: PairSequence[] = [];
  for (let p = 0; p < prompts * k * (k - 1); p++) {
    // [CLS] <s> x [SEP] [CLS] <c1> y_i [SEP] [CLS] <c2> y_j [SEP]; each slot follows a [CLS].
    const tokens = [1, s, ...text(src), 2, 1, c1, ...text(cand), 2, 1, c2, ...text(cand), 2];
    seqs.push({ tokens, slots: [1, src + 4, src + cand + 7] });
  }
  const device = o.device ?? 'cpu', precision = o.precision ?? 'fp32';
  checkDevice(device, precision);
  const deviceName = device === 'cuda' ? (native().cudaDevices().devices[0]?.name ?? 'CUDA') : 'CPU';
  const model = new (native().PairRM)(config, { device, precision });
  try {
    await model.initRandom(1, 0.02);
    await model.compare(packPairs(seqs.slice(0, batch))); // warm-up: allocations
    const t0 = performance.now();
    for (let i = 0; i < seqs.length; i += batch) await model.compare(packPairs(seqs.slice(i, i + batch)));
    const seconds = (performance.now() - t0) / 1000;
    return {
      size, config, device, deviceName, precision, threads: cpus().length, k, prompts, pairs: seqs.length, tokensPerPair: seqs[0]!.tokens.length, batch,
      seconds, pairsPerSecond: seqs.length / seconds, secondsPerPrompt: seconds / prompts,
    };
  } finally {
    model.free();
  }
}

export function formatPairRmBench(r: PairRmBenchResult): string {
  const c = r.config;
  return [
    `model     PairRM ${r.size}: ${c.numLayers} layers, hidden ${c.hiddenSize}, ${c.numHeads} heads, ffn ${c.intermediateSize}, vocab ${c.vocabSize}; ` +
      (r.device === 'cuda' ? `CUDA ${r.deviceName}, ${r.precision}` : `CPU, ${r.threads} threads`),
    `pairs     K = ${r.k}, ${r.prompts} prompt(s): ${r.pairs} ordered pairs of ${r.tokensPerPair} tokens, ${r.batch} per call`,
    `speed     ${r.seconds.toFixed(2)} s: ${r.pairsPerSecond.toFixed(3)} pairs/s, ${r.secondsPerPrompt.toFixed(1)} s per prompt`,
  ].join('\n');
}

/** The engine's reason when the device cannot run here; bf16 and fp16 are timed on CUDA only. */
function checkDevice(device: DeviceName, precision: string): void {
  if (precision !== 'fp32' && precision !== 'bf16' && precision !== 'fp16') {
    throw new Error(`bench pairrm: --precision must be fp32, bf16 or fp16 (got '${precision}')`);
  }
  requireDevice(device);
  if (device === 'cuda') requireCublasLt();
  if (device === 'cpu' && precision !== 'fp32') {
    throw new Error(`bench pairrm: --precision ${precision} on the CPU is an emulation (${precision} storage, fp32 arithmetic) for parity checks, not something to time; use --device cuda`);
  }
}

/** Runs the suite, prints the table and writes the JSON report (default bench/out/pairrm-<date>.json). */
export async function runPairRmBench(
  opts: PairRmBenchOptions & { out?: string; log?: (line: string) => void } = {},
): Promise<PairRmBenchResult & { out: string }> {
  const log = opts.log ?? ((line: string) => console.log(line));
  checkDevice(opts.device ?? 'cpu', opts.precision ?? 'fp32');
  if (opts.size !== undefined && !(opts.size in SIZES)) throw new Error(`bench pairrm: --size must be 'large' or 'tiny' (got '${String(opts.size)}')`);
  const r = await benchPairRm(opts);
  log(formatPairRmBench(r));
  const out = resolve(opts.out ?? join('bench', 'out', `pairrm-${new Date().toISOString().slice(0, 10)}.json`));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify({ suite: 'pairrm', date: new Date().toISOString(), ...r }, null, 2)}\n`);
  log(`wrote ${out}`);
  return { ...r, out };
}
