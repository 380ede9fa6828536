// A PairRM folder (llm-blender/PairRM-hf) loaded into the native PairRM model: config.json and
// every safetensors header are checked in TypeScript before anything is allocated, then the
// weights are read into the core's arena. The handle compares packed pairs (src/pairrm/batching.ts).
import type { DeviceName, NativePairBatch, NativePairRm, PairRmPrecision } from '../native/addon.js';
import { native, requireCublasLt, requireDevice } from '../native/addon.js';
import { CancelledError } from '../model/engine.js';
import { planPairRmWeights } from './checkpoint.js';
import { readPairRmConfig, type PairRmModelConfig } from './config.js';
import { PairRmTokenizer } from './tokenizer.js';

export interface LoadPairRmOptions {
  device?: DeviceName;
  /**
   * fp32 (default); bf16 or fp16 (16-bit weights and activations, fp32 statistics: the GPU's fast
   * modes, emulated on the CPU; fp16 is how llm-blender runs PairRM); fp64 (CPU only) for parity tests.
   */
  precision?: PairRmPrecision;
}

export const PAIRRM_PRECISIONS: readonly PairRmPrecision[] = ['fp32', 'bf16', 'fp16', 'fp64'];

const live = new Set<PairRmHandle>();

/** Stops the native call in flight on every live PairRM model (Ctrl-C): each returns within a layer. */
export function cancelAllPairRmWork(): void {
  for (const m of live) m.cancel();
}

export class PairRmHandle {
  constructor(
    readonly folder: string,
    readonly config: PairRmModelConfig,
    readonly tokenizer: PairRmTokenizer,
    private readonly model: NativePairRm,
    readonly precision: PairRmPrecision,
  ) {
    live.add(this);
  }

  get device(): DeviceName {
    return this.model.device;
  }

  /** Per pair: the logit of candidate 1 over candidate 2 (llm-blender's comparison logit). */
  async compare(batch: NativePairBatch): Promise<Float64Array> {
    return cancellable(this.model.compare(batch));
  }

  async hiddenStates(batch: NativePairBatch): Promise<Float64Array> {
    return cancellable(this.model.hiddenStates(batch));
  }

  memoryPlan(tokens: number, sequences: number): { weights: number; activations: number; total: number } {
    return this.model.memoryPlan(tokens, sequences);
  }

  cancel(): void {
    if (!this.model.freed) this.model.cancel();
  }

  free(): void {
    live.delete(this);
    this.model.free();
  }
}

async function cancellable<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof Error && err.message === 'cancelled') throw new CancelledError();
    throw err;
  }
}

/**
 * The native model of a PairRM folder whose config.json has been read: every safetensors header
 * is checked against it before the model is allocated. (loadPairRm adds the tokenizer.)
 */
export async function openPairRmModel(folder: string, config: PairRmModelConfig, opts: LoadPairRmOptions = {}): Promise<NativePairRm> {
  const device = opts.device ?? 'cpu';
  requireDevice(device);
  const precision = opts.precision ?? 'fp32';
  if (!(PAIRRM_PRECISIONS as readonly string[]).includes(precision)) {
    throw new Error(`PairRM precision must be ${PAIRRM_PRECISIONS.map((p) => `'${p}'`).join(', ')} (got '${String(precision)}')`);
  }
  if (device === 'cuda') {
    requireCublasLt();
    if (precision === 'fp64') throw new Error("PairRM on device 'cuda' computes in fp32, bf16 or fp16 (got precision 'fp64'; fp64 runs on the CPU)");
  }
  const ranges = planPairRmWeights(folder, config.native);
  const model = new (native().PairRM)(config.native, { device, precision });
  try {
    await model.loadTensors(ranges);
  } catch (err) {
    model.free();
    throw err;
  }
  return model;
}

export async function loadPairRm(folder: string, opts: LoadPairRmOptions = {}): Promise<PairRmHandle> {
  const config = readPairRmConfig(folder);
  const tokenizer = PairRmTokenizer.load(folder, config.ids);
  if (tokenizer.vocabSize > config.native.vocabSize) {
    throw new Error(`${folder}: tokenizer.json has ${tokenizer.vocabSize} tokens but config.json's vocab_size is ${config.native.vocabSize}`);
  }
  return new PairRmHandle(folder, config, tokenizer, await openPairRmModel(folder, config, opts), opts.precision ?? 'fp32');
}
