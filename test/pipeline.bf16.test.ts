// precision bf16 through the pipeline, on the CPU's bf16 emulation (bf16 weights and activations,
// fp32 arithmetic, fp32 master weights and optimizer state in the trainer): the same code path a
// GPU run takes, checked here where no GPU is.
//
// - Training resumes bit for bit: the resume state keeps the fp32 master weights (an optimizer
//   slot), so a run stopped after a step and rerun ends with exactly the weights of a run that was
//   never stopped. (Were the master rebuilt from the saved bf16 weights, it would lose the bits
//   below bf16's resolution that the steps accumulated, and the runs would part: the learning rate
//   here moves weights by several bf16 steps, so those bits decide roundings. The test checks that
//   too, by overwriting the saved master with the bf16 weights before the rerun.)
// - bf16 training tracks fp32 training of the same start (loss per step within bf16's tolerance).
// - A whole bf16 run writes checkpoints whose every value is a bf16 number.
// - train.gradientDtype bf16 (bf16 gradient buffers): the training stage runs, tracks the
//   fp32-gradient run of the same start, and resumes bit for bit as well.
import { describe, expect, it } from 'vitest';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandomModel, type EngineModel, type ModelPrecision } from '../src/model/engine.js';
import { runTraining } from '../src/stages/train.js';
import { trainFromSources } from '../src/api.js';
import { DEMO_DIR } from '../src/pipeline/demo.js';
import { defaultRecipe } from '../src/recipe/fields.js';
import type { Recipe } from '../src/recipe/types.js';
import type { PreferencePair } from '../src/model/types.js';
import { readSafetensorsHeader } from '../src/model/safetensors.js';
import { resolveAtomicDir } from '../src/run/atomic.js';
import { seededRandom } from './sppo.seed.js';

const root = mkdtempSync(join(tmpdir(), 'sppo-bf16-'));
const { seed, rand } = seededRandom('pipeline.bf16');
const demoConfig = JSON.parse(readFileSync(join(DEMO_DIR, 'model-config.json'), 'utf8')) as Record<string, unknown>;
const modelSeed = 1 + (seed % 1000);

const tok = (): number => 3 + Math.floor(rand() * 120);
const seq = () => ({ tokens: [1, tok(), tok(), ...Array.from({ length: 2 + Math.floor(rand() * 6) }, tok)], promptLength: 3 });
const pairs: PreferencePair[] = Array.from({ length: 8 }, () => ({
  chosen: seq(), rejected: seq(), refChosen: -30 * rand(), refRejected: -30 * rand(), chosenProbs: 0.5 + 0.5 * rand(), chosenProbsWin: 1, chosenProbsLose: 0,
}));

function trainRecipe(name: string, precision: ModelPrecision, gradientDtype: 'fp32' | 'bf16' = 'fp32'): Recipe {
  const r = defaultRecipe();
  r.output = join(root, name);
  r.precision = precision;
  // Four optimizer steps of two pairs, a resume state after each; lr large enough that a step moves
  // weights by several bf16 units (RMSprop normalises the gradient: steps of about lr).
  r.train = { ...r.train, globalBatch: 2, microBatch: 1, epochs: 1, lr: 2e-3, warmupRatio: 0, resumeEvery: 1, optimizer: 'rmsprop', gradientDtype };
  r.sppo = { ...r.sppo, eta: 10 };
  return r;
}

/**
 * The negative control: the resume state's master weights overwritten with the saved bf16 weights
 * (what a resume would have without the master slot), in place in optimizer.safetensors.
 */
function forgetMaster(runDir: string): number {
  const dir = resolveAtomicDir(join(runDir, 'resume'))!;
  const opt = join(dir, 'optimizer.safetensors'), weights = join(dir, 'model', 'model.safetensors');
  const saved = readSafetensorsHeader(weights).tensors, wbytes = readFileSync(weights);
  const fd = openSync(opt, 'r+');
  let n = 0;
  try {
    for (const t of readSafetensorsHeader(opt).tensors.values()) {
      if (!t.name.endsWith('.master')) continue;
      const w = saved.get(t.name.slice(0, -'.master'.length));
      if (!w || w.dtype !== 'F32' || w.nbytes !== t.nbytes) throw new Error(`${t.name}: no F32 weight of its size in ${weights}`);
      writeSync(fd, wbytes, w.offset, w.nbytes, t.offset);
      n++;
    }
  } finally {
    closeSync(fd);
  }
  return n;
}

async function run(
  name: string,
  precision: ModelPrecision,
  stopAfterStep?: number,
  betweenRuns?: (dir: string) => void,
  gradientDtype: 'fp32' | 'bf16' = 'fp32',
): Promise<{ weights: Map<string, Float32Array>; losses: number[] }> {
  const r = trainRecipe(name, precision, gradientDtype);
  mkdirSync(r.output, { recursive: true });
  const losses: number[] = [];
  const stage = (stop?: number) => ({
    iteration: 1, dir: r.output, recipe: r, pairs, tokenizerFrom: DEMO_DIR,
    loadPolicy: () => createRandomModel(demoConfig, modelSeed, { precision }),
    loadFolder: async (f: string) => (await import('../src/model/engine.js')).loadModel(f, { precision }),
    onEvent: (e: { type: string; metrics?: Record<string, number> }) => {
      if (e.type !== 'step') return;
      losses.push(e.metrics!.loss!);
      if (stop !== undefined && losses.length === stop) throw new Error('stopped by the test');
    },
  });
  if (stopAfterStep !== undefined) await expect(runTraining(stage(stopAfterStep))).rejects.toThrow('stopped by the test');
  betweenRuns?.(r.output);
  const result = await runTraining(stage());
  try {
    const m = result.model as EngineModel;
    const weights = new Map(m.parameters().map((p) => [p.name, m.parameter(p.name)] as const));
    return { weights, losses };
  } finally {
    result.model.free();
  }
}

const isBf16 = (x: number): boolean => {
  const f = new Float32Array([x]);
  return (new Uint32Array(f.buffer)[0]! & 0xffff) === 0;
};

describe('precision bf16 (the CPU emulation of the GPU mode)', () => {
  it('training stopped after a step and rerun ends with the weights of an uninterrupted run, bit for bit', async () => {
    const whole = await run('whole', 'bf16');
    const resumed = await run('resumed', 'bf16', 2);
    expect(whole.losses).toHaveLength(4);
    expect(resumed.losses.slice(0, 2)).toEqual(whole.losses.slice(0, 2));
    let moved = 0;
    const start = await createRandomModel(demoConfig, modelSeed, { precision: 'bf16' });
    try {
      for (const [name, w] of whole.weights) {
        const r = resumed.weights.get(name)!;
        expect(r, name).toEqual(w);
        const s = start.parameter(name);
        for (let i = 0; i < w.length; i++) {
          expect(isBf16(w[i]!), `${name}[${i}] = ${w[i]} is not a bf16 value`).toBe(true);
          if (w[i] !== s[i]) moved++;
        }
      }
    } finally {
      start.free();
    }
    expect(moved).toBeGreaterThan(0); // training changed the weights
    // The control: the same resume with the master rebuilt from the bf16 weights ends elsewhere.
    let forgotten = 0;
    const lossy = await run('resumed-without-master', 'bf16', 2, (dir) => { forgotten = forgetMaster(dir); });
    expect(forgotten).toBe(whole.weights.size);
    let differ = 0;
    for (const [name, w] of whole.weights) {
      const l = lossy.weights.get(name)!;
      for (let i = 0; i < w.length; i++) if (l[i] !== w[i]) differ++;
    }
    expect(differ).toBeGreaterThan(0);
  });

  it('tracks fp32 training of the same start: the losses of four steps agree within bf16 rounding', async () => {
    const b = await run('track-bf16', 'bf16');
    const f = await run('track-fp32', 'fp32');
    expect(b.losses).toHaveLength(f.losses.length);
    // Step 1's loss is one forward of the same weights (bf16 rounding only: measured <= 0.13%);
    // later steps also carry the runs' parted updates (measured up to 2.3%: the loss is a square).
    expect(Math.abs(b.losses[0]! - f.losses[0]!), `step 1: bf16 ${b.losses[0]} vs fp32 ${f.losses[0]}`).toBeLessThan(0.01 * Math.abs(f.losses[0]!));
    b.losses.forEach((l, i) => expect(Math.abs(l - f.losses[i]!), `step ${i + 1}: bf16 ${l} vs fp32 ${f.losses[i]}`).toBeLessThan(0.05 * Math.abs(f.losses[i]!) + 1e-3));
  });

  it('with bf16 gradient buffers: trains, tracks the fp32-gradient run, and resumes bit for bit', async () => {
    const g32 = await run('track-g32', 'bf16');
    const whole = await run('whole-g16', 'bf16', undefined, undefined, 'bf16');
    const resumed = await run('resumed-g16', 'bf16', 2, undefined, 'bf16');
    expect(whole.losses).toHaveLength(4);
    // Step 1's forward runs on the same weights, so its loss is the same number; then two
    // micro-batches a step accumulate into bf16 gradients (a rounding per op and micro-batch).
    expect(whole.losses[0]).toBe(g32.losses[0]);
    whole.losses.forEach((l, i) => expect(Math.abs(l - g32.losses[i]!), `step ${i + 1}: bf16 gradients ${l} vs fp32 ${g32.losses[i]}`).toBeLessThan(0.05 * Math.abs(g32.losses[i]!) + 1e-3));
    let differ = 0;
    for (const [name, w] of whole.weights) {
      expect(resumed.weights.get(name), name).toEqual(w);
      const o = g32.weights.get(name)!;
      for (let i = 0; i < w.length; i++) {
        if (!isBf16(w[i]!)) throw new Error(`${name}[${i}] = ${w[i]} is not a bf16 value`);
        if (o[i] !== w[i]) differ++;
      }
    }
    expect(differ).toBeGreaterThan(0); // the gradient buffers' rounding is real: not the fp32-gradient run
  });

  it('a trainer refuses bf16 gradient buffers on an fp32 model, naming both', async () => {
    const m = await createRandomModel(demoConfig, modelSeed, { precision: 'fp32' });
    try {
      await expect(m.createTrainer({ optimizer: { kind: 'rmsprop' }, gradientDtype: 'bf16' })).rejects.toThrow("gradientDtype 'bf16' needs a bf16 model (this model was loaded in fp32)");
    } finally {
      m.free();
    }
  });

  it('a demo run in bf16 writes checkpoints of bf16 values and a resumable run folder', async () => {
    const out = join(root, 'demo');
    const { result } = await trainFromSources({
      overrides: { iterations: 1, maxPrompts: 8, seed: seed % 1000, precision: 'bf16', output: out, 'rollout.k': 3, 'rollout.shardSize': 4, 'train.globalBatch': 4, 'train.microBatch': 2, 'eval.prompts': 0 },
    });
    expect(result.iterations).toHaveLength(1);
    const ckpt = join(result.finalModel, 'model.safetensors');
    const { tensors } = readSafetensorsHeader(ckpt);
    const bytes = readFileSync(ckpt);
    let checked = 0;
    for (const t of tensors.values()) {
      if (t.dtype === 'BF16') { checked += t.nbytes / 2; continue; } // bf16 by construction
      expect(t.dtype).toBe('F32');
      const f = new Float32Array(bytes.buffer.slice(bytes.byteOffset + t.offset, bytes.byteOffset + t.offset + t.nbytes));
      for (const x of f) if (!isBf16(x)) throw new Error(`${t.name}: ${x} is not a bf16 value`);
      checked += f.length;
    }
    expect(checked).toBeGreaterThan(0);
  });
});
