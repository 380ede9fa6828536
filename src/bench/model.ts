// `sppo-native bench model`: CPU throughput of the model engine on a random Llama of a preset size
// (tiny, small, 100m, 1b: src/model/presets.ts) through the addon: SPPO training steps (forward + backward of both sides of each pair,
// then an RMSprop step) and KV-cache generation. Measured here, never in tests.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { DeviceName } from '../native/addon.js';
import { createRandomModel } from '../model/engine.js';
import { SeededRandom } from '../util/rng.js';
import type { PreferencePair } from '../model/types.js';
import { MODEL_PRESETS, isModelPreset, parameterCount, presetConfig, presetDescription, type ModelPreset } from '../model/presets.js';

export interface ModelBenchOptions {
  /** A preset size (src/model/presets.ts); default 'small'. */
  size?: ModelPreset;
  pairs?: number;       // pairs per training step
  seqLen?: number;      // tokens per sequence (prompt + response)
  steps?: number;       // measured training steps (after one warm-up)
  prompts?: number;     // generation batch
  newTokens?: number;   // tokens generated per prompt
  gradientCheckpointing?: boolean;
  /** This machine's memory (default os.totalmem), for the plan check. */
  memoryBytes?: () => number;
  log?: (line: string) => void;
}

export interface ModelBenchResult {
  config: Record<string, unknown>;
  parameters: number;
  threads: number;
  train: { pairs: number; seqLen: number; steps: number; secondsPerStep: number; tokensPerSecond: number };
  generate: { prompts: number; newTokens: number; seconds: number; tokensPerSecond: number };
  /** A rollout's prefill: K samples per prompt from one prefill, against K calls of one sample. */
  rollout: { prompts: number; promptTokens: number; k: number; sharedSeconds: number; separateSeconds: number };
}

/** The larger sizes take minutes per step on a CPU: smaller default workloads for them. */
const DEFAULT_WORK: Record<ModelPreset, { pairs: number; seqLen: number; steps: number; prompts: number; newTokens: number }> = {
  tiny: { pairs: 4, seqLen: 128, steps: 2, prompts: 4, newTokens: 32 },
  small: { pairs: 4, seqLen: 128, steps: 2, prompts: 4, newTokens: 32 },
  '100m': { pairs: 2, seqLen: 128, steps: 1, prompts: 2, newTokens: 16 },
  '1b': { pairs: 1, seqLen: 64, steps: 1, prompts: 1, newTokens: 8 },
};

/**
 * Bytes the benchmark needs, planned before allocating: fp32 weights, gradients and the RMSprop
 * state (12 bytes per parameter), plus logits and activations of one micro-batch (a rough bound).
 */
export function benchMemoryBytes(config: Record<string, unknown>, parameters: number, pairs: number, seqLen: number): number {
  const tokens = 2 * pairs * seqLen;
  const hidden = Number(config.hidden_size);
  const layers = Number(config.num_hidden_layers);
  const inter = Number(config.intermediate_size);
  const vocab = Number(config.vocab_size);
  const activations = 4 * tokens * (layers * (8 * hidden + 3 * inter) + 2 * vocab);
  return 12 * parameters + activations;
}

export async function benchModel(opts: ModelBenchOptions = {}): Promise<ModelBenchResult> {
  const size = opts.size ?? 'small';
  const work = DEFAULT_WORK[size];
  const nPairs = opts.pairs ?? work.pairs;
  const seqLen = opts.seqLen ?? work.seqLen;
  const steps = opts.steps ?? work.steps;
  const nPrompts = opts.prompts ?? work.prompts;
  const newTokens = opts.newTokens ?? work.newTokens;
  for (const [k, v] of Object.entries({ pairs: nPairs, seqLen, steps, prompts: nPrompts, newTokens })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`bench model: ${k} must be a positive integer (got ${v})`);
  }
  const config = presetConfig(size);
  const planned = benchMemoryBytes(config, parameterCount(config), nPairs, seqLen);
  const have = (opts.memoryBytes ?? totalmem)();
  if (planned > 0.9 * have) {
    throw new Error(
      `bench model: --size ${size} needs about ${(planned / 2 ** 30).toFixed(1)} GiB (fp32 weights, gradients and optimizer state of ` +
        `${(parameterCount(config) / 1e9).toFixed(2)}B parameters, and activations), but this machine has ${(have / 2 ** 30).toFixed(1)} GiB`,
    );
  }
  opts.log?.(`bench model: ${size} = ${presetDescription(size)}; planned memory ${(planned / 2 ** 30).toFixed(2)} GiB${size === '1b' ? ' (slow on a CPU)' : ''}`);
  const vocab = config.vocab_size as number;
  const rng = new SeededRandom(12345);
  const seq = (n: number) => Array.from({ length: n }, () => 3 + Math.floor(rng.uniform() * (vocab - 3)));
  const model = await createRandomModel(config, 1, { gradientCheckpointing: opts.gradientCheckpointing ?? false });
  try {
    const parameters = model.parameters().reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
    const promptLen = Math.max(1, Math.floor(seqLen / 4));
    const pairs: PreferencePair[] = Array.from({ length: nPairs }, () => ({
      chosen: { tokens: seq(seqLen), promptLength: promptLen },
      rejected: { tokens: seq(seqLen), promptLength: promptLen },
      refChosen: -100 * rng.uniform(), refRejected: -100 * rng.uniform(),
      chosenProbs: rng.uniform(), chosenProbsWin: rng.uniform(), chosenProbsLose: rng.uniform(),
    }));
    const trainer = await model.createTrainer({ optimizer: { kind: 'rmsprop' } });
    const step = async () => {
      await trainer.accumulate(pairs, 'sppo', 1e-3, 1);
      await trainer.step(5e-7, 1);
    };
    let secondsPerStep: number;
    try {
      await step(); // warm-up: optimizer state, allocations
      const t = performance.now();
      for (let i = 0; i < steps; i++) await step();
      secondsPerStep = (performance.now() - t) / 1000 / steps;
    } finally {
      trainer.free();
    }

    const prompts = Array.from({ length: nPrompts }, () => seq(16));
    const gopts = { maxNewTokens: newTokens, temperature: 0.7, topP: 0.9, eosTokenIds: [] as number[] };
    await model.generate(prompts.slice(0, 1), [0], { ...gopts, maxNewTokens: 2 });
    const t0 = performance.now();
    const gens = await model.generate(prompts, prompts.map((_, i) => i * 50), gopts);
    const genSeconds = (performance.now() - t0) / 1000;
    const generated = gens.reduce((s, g) => s + g.tokens.length, 0);

    // One new token each, so the prefill dominates: the shared prefill should cost about one
    // prefill plus K one-token decodes, the separate calls K prefills.
    const k = 5;
    const promptTokens = Math.max(1, Math.floor((3 * seqLen) / 4));
    const long = Array.from({ length: nPrompts }, () => seq(promptTokens));
    const seeds = long.map((_, i) => 7 + i);
    const one = { ...gopts, maxNewTokens: 1 };
    const t1 = performance.now();
    await model.generate(long, seeds, { ...one, samples: k });
    const sharedSeconds = (performance.now() - t1) / 1000;
    const t2 = performance.now();
    for (let r = 0; r < k; r++) await model.generate(long, seeds, one);
    const separateSeconds = (performance.now() - t2) / 1000;
    return {
      config,
      parameters,
      threads: cpus().length,
      train: { pairs: nPairs, seqLen, steps, secondsPerStep, tokensPerSecond: (2 * nPairs * seqLen) / secondsPerStep },
      generate: { prompts: nPrompts, newTokens, seconds: genSeconds, tokensPerSecond: generated / genSeconds },
      rollout: { prompts: nPrompts, promptTokens, k, sharedSeconds, separateSeconds },
    };
  } finally {
    model.free();
  }
}

export function formatModelBench(r: ModelBenchResult): string {
  const c = r.config;
  const rows: [string, string][] = [
    ['model', `Llama-style H=${String(c.hidden_size)} L=${String(c.num_hidden_layers)} heads=${String(c.num_attention_heads)}/${String(c.num_key_value_heads)} V=${String(c.vocab_size)} (${(r.parameters / 1e6).toFixed(2)}M params), CPU, ${r.threads} threads`],
    ['train step', `${r.train.pairs} pairs x 2 x ${r.train.seqLen} tokens: ${(r.train.secondsPerStep * 1000).toFixed(1)} ms/step, ${r.train.tokensPerSecond.toFixed(0)} tokens/s`],
    ['generate', `${r.generate.prompts} prompts x ${r.generate.newTokens} new tokens: ${r.generate.seconds.toFixed(3)} s, ${r.generate.tokensPerSecond.toFixed(1)} tokens/s`],
    [
      'rollout prefill',
      `${r.rollout.prompts} prompts x ${r.rollout.promptTokens} tokens, K=${r.rollout.k}: one shared prefill ${r.rollout.sharedSeconds.toFixed(3)} s, ` +
        `${r.rollout.k} separate ${r.rollout.separateSeconds.toFixed(3)} s (${(r.rollout.separateSeconds / r.rollout.sharedSeconds).toFixed(1)}x)`,
    ],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

/** Runs the suite, prints the table and writes the JSON report (default bench/out/model-<date>.json). */
export async function runModelBench(
  opts: ModelBenchOptions & { device?: DeviceName; out?: string; log?: (line: string) => void } = {},
): Promise<ModelBenchResult & { out: string }> {
  const log = opts.log ?? ((line: string) => console.log(line));
  if ((opts.device ?? 'cpu') !== 'cpu') {
    throw new Error("bench model: the model engine runs on the CPU backend in this build (use --device cpu)");
  }
  if (opts.size !== undefined && !isModelPreset(opts.size)) {
    throw new Error(`bench model: --size must be one of ${MODEL_PRESETS.join(', ')} (got '${String(opts.size)}')`);
  }
  const r = await benchModel({ ...opts, log });
  log(formatModelBench(r));
  const out = resolve(opts.out ?? join('bench', 'out', `model-${new Date().toISOString().slice(0, 10)}.json`));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify({ suite: 'model', date: new Date().toISOString(), ...r }, null, 2)}\n`);
  log(`wrote ${out}`);
  return { ...r, out };
}
