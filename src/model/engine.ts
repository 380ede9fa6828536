// The model engine: ModelHandle (src/model/types.ts) over the addon's Model class.
// TypeScript validates inputs, pads batches and owns the checkpoint metadata; the addon does the
// math off the event loop.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { requireCublasLt, requireDevice, type DeviceName, type Precision } from '../native/addon.js';
import { LOSS_TYPES, OPTIMIZER_KINDS } from '../native/kinds.js';
import { native, type NativeModel, type NativeTrainer } from '../native/addon.js';
import { padBatch, unpadLogits, type PaddingSide } from './batch.js';
import { checkCheckpoint, hasTokenizerFiles, loadWeights, saveModelFolder } from './checkpoint.js';
import { parseModelConfig, readModelConfig, toNativeConfig, type GenerationConfig, type ModelConfig } from './config.js';
import { buildSafetensorsHeader, readSafetensorsHeader } from './safetensors.js';
import type {
  Generation,
  GenerateOptions,
  GenerateStats,
  LossType,
  ModelHandle,
  OptimizerOptions,
  PreferencePair,
  SaveOptions,
  ScoredSequence,
  StepMetrics,
  StepResult,
  TrainerHandle,
  TrainerOptions,
} from './types.js';

/** The numeric modes a model can be loaded in (fp64 is the core's finite-difference twin, not offered here). */
export type ModelPrecision = Extract<Precision, 'fp32' | 'bf16'>;

export interface LoadModelOptions {
  device?: DeviceName;
  /**
   * fp32 (the default), or bf16: bf16 weights and activations, fp32 gradients, statistics and (in a
   * trainer) fp32 master weights and optimizer state. bf16 is the CUDA engine's training mode; on
   * the CPU it is emulated (bf16 storage, fp32 arithmetic) for parity checks and runs slower than fp32.
   */
  precision?: ModelPrecision;
  /** Recompute each layer in backward instead of storing its activations. */
  gradientCheckpointing?: boolean;
}

const OPTIMIZER_FORMAT = 'sppo-native-optimizer';

/**
 * Throws the one reason `device` cannot run models here: no CUDA backend in this build, no GPU
 * visible, or no cuBLASLt (the CUDA backend's matrix products). Models run in fp32 or bf16 on
 * either device (see LoadModelOptions.precision).
 */
function checkDevice(device: DeviceName): void {
  requireDevice(device);
  if (device === 'cuda') requireCublasLt();
}

/** A native call stopped by cancel() (or by a signal through cancelAllNativeWork). */
export class CancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'CancelledError';
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

const liveModels = new Set<EngineModel>();

/** Stops the native call in flight on every live model (Ctrl-C, SIGTERM): each returns within about a step. */
export function cancelAllNativeWork(): void {
  for (const m of liveModels) m.cancel();
}

function checkPrecision(p: unknown): ModelPrecision {
  if (p !== 'fp32' && p !== 'bf16') throw new Error(`precision must be 'fp32' or 'bf16' (got '${String(p)}')`);
  return p;
}

function createNativeModel(config: ReturnType<typeof toNativeConfig>, device: DeviceName, precision: ModelPrecision): NativeModel {
  return new (native().Model)(config, { device, precision });
}

function finite(v: number, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${what} must be a finite number (got ${String(v)})`);
  return v;
}

function probability(v: number, what: string): number {
  finite(v, what);
  if (v < 0 || v > 1) throw new Error(`${what} must be a probability in [0, 1] (got ${v})`);
  return v;
}

export class EngineModel implements ModelHandle {
  readonly folder: string | null;
  readonly config: Readonly<Record<string, unknown>>;
  readonly device: DeviceName;
  readonly precision: ModelPrecision;
  readonly vocabSize: number;
  readonly eosTokenIds: number[];
  readonly isRewardModel: boolean;
  readonly modelConfig: ModelConfig;
  private readonly generation: GenerationConfig | null;
  private readonly nativeModel: NativeModel;
  private readonly trainers = new Set<EngineTrainer>();

  constructor(
    nativeModel: NativeModel,
    modelConfig: ModelConfig,
    generation: GenerationConfig | null,
    folder: string | null,
    device: DeviceName,
    precision: ModelPrecision = 'fp32',
  ) {
    this.nativeModel = nativeModel;
    this.precision = precision;
    this.modelConfig = modelConfig;
    this.generation = generation;
    this.folder = folder;
    this.device = device;
    this.config = modelConfig.raw;
    this.vocabSize = modelConfig.vocabSize;
    this.eosTokenIds = [...modelConfig.eosTokenIds];
    this.isRewardModel = modelConfig.sequenceClassification;
    liveModels.add(this);
  }

  private get limits() {
    return { vocabSize: this.vocabSize, maxLength: this.modelConfig.maxSequenceLength };
  }

  private requireCausal(what: string): void {
    if (this.isRewardModel) throw new Error(`${what}: this is a reward model (${this.modelConfig.architecture}); it has no language-model head`);
  }

  /** Parameter names and shapes, in the core's order. */
  parameters(): { name: string; shape: number[] }[] {
    return this.nativeModel.params();
  }

  /** A copy of one parameter's values (for tests and tools). */
  parameter(name: string): Float32Array {
    return this.nativeModel.readParam(name);
  }

  setGradientCheckpointing(on: boolean): void {
    this.nativeModel.setGradientCheckpointing(on);
  }

  async logits(seqs: number[][], opts: { padding?: PaddingSide } = {}): Promise<Float32Array[]> {
    this.requireCausal('logits');
    const side = opts.padding ?? 'right';
    const batch = padBatch(seqs, this.limits, { side });
    const flat = await cancellable(this.nativeModel.logits(batch));
    return seqs.map((_, b) => unpadLogits(flat, batch, this.vocabSize, b, side));
  }

  async sequenceLogprobs(seqs: ScoredSequence[], opts: { padding?: PaddingSide } = {}): Promise<Float64Array> {
    this.requireCausal('sequenceLogprobs');
    if (!Array.isArray(seqs) || seqs.length === 0) throw new Error('sequenceLogprobs: sequences must be a non-empty array');
    const batch = padBatch(
      seqs.map((s) => s.tokens),
      this.limits,
      { side: opts.padding ?? 'right', promptLengths: seqs.map((s) => s.promptLength) },
    );
    return Float64Array.from(await cancellable(this.nativeModel.sequenceLogprobs(batch)));
  }

  async scores(seqs: number[][]): Promise<Float32Array> {
    if (!this.isRewardModel) throw new Error(`scores: this is a causal language model (${this.modelConfig.architecture}), not a reward model`);
    if (this.modelConfig.numLabels !== 1) {
      throw new Error(`scores: the reward model has num_labels = ${this.modelConfig.numLabels}; one score per sequence needs num_labels = 1`);
    }
    return cancellable(this.nativeModel.scores(padBatch(seqs, this.limits, { side: 'right' })));
  }

  async generate(prompts: number[][], seeds: number[], opts: GenerateOptions): Promise<Generation[]> {
    const samples = opts.samples ?? 1;
    const out: Generation[] = [];
    await this.generateEach(prompts, seeds, opts, (i, gens) => {
      gens.forEach((g, k) => { out[i * samples + k] = g; });
    });
    return out;
  }

  async generateEach(prompts: number[][], seeds: number[], opts: GenerateOptions, onPrompt: (prompt: number, generations: Generation[]) => void): Promise<GenerateStats> {
    this.requireCausal('generate');
    if (typeof onPrompt !== 'function') throw new Error('generate: onPrompt must be a function');
    if (!Array.isArray(prompts) || prompts.length === 0) throw new Error('generate: prompts must be a non-empty array');
    if (!Array.isArray(seeds) || seeds.length !== prompts.length) {
      throw new Error(`generate: seeds must have one seed per prompt (${prompts.length}), got ${Array.isArray(seeds) ? seeds.length : 'none'}`);
    }
    seeds.forEach((s, i) => {
      if (!Number.isSafeInteger(s) || s < 0) throw new Error(`generate: seeds[${i}] must be a non-negative integer (got ${s})`);
    });
    padBatch(prompts, this.limits, { what: 'prompts' }); // validates the ids
    const maxLen = this.modelConfig.maxSequenceLength;
    if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) {
      throw new Error(`generate: maxNewTokens must be a non-negative integer (got ${opts.maxNewTokens})`);
    }
    if (maxLen !== null) {
      prompts.forEach((p, i) => {
        if (p.length + opts.maxNewTokens > maxLen) {
          throw new Error(`generate: prompts[${i}] (${p.length} tokens) + maxNewTokens (${opts.maxNewTokens}) exceeds the sliding window (${maxLen})`);
        }
      });
    }
    finite(opts.temperature, 'generate: temperature');
    if (opts.temperature < 0) throw new Error(`generate: temperature must be >= 0 (got ${opts.temperature})`);
    finite(opts.topP, 'generate: topP');
    if (!(opts.topP > 0 && opts.topP <= 1)) throw new Error(`generate: topP must be in (0, 1] (got ${opts.topP})`);
    if (opts.topK !== undefined && (!Number.isInteger(opts.topK) || opts.topK < 0)) {
      throw new Error(`generate: topK must be a non-negative integer (got ${opts.topK})`);
    }
    const samples = opts.samples ?? 1;
    if (!Number.isInteger(samples) || samples < 1) throw new Error(`generate: samples must be a positive integer (got ${samples})`);
    const eos = opts.eosTokenIds ?? this.eosTokenIds;
    eos.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new Error(`generate: eosTokenIds[${i}] = ${id} is not a token id`);
    });
    for (const key of ['maxBatchTokens', 'maxRunningSequences', 'maxCacheTokens'] as const) {
      const v = opts[key];
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new Error(`generate: ${key} must be a non-negative integer, 0 = automatic (got ${v})`);
    }
    const swap = opts.maxSwapTokens;
    if (swap !== undefined && (!Number.isSafeInteger(swap) || swap < -1)) throw new Error(`generate: maxSwapTokens must be an integer >= -1, -1 = automatic, 0 = none (got ${swap})`);
    if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') throw new Error('generate: onProgress must be a function');
    const onProgress = opts.onProgress;
    return cancellable(this.nativeModel.generate(
      prompts.map((p) => Int32Array.from(p)),
      samples,
      seeds,
      {
        maxNewTokens: opts.maxNewTokens,
        temperature: opts.temperature,
        topP: opts.topP,
        ...(opts.topK !== undefined ? { topK: opts.topK } : {}),
        greedy: opts.greedy ?? false,
        eosTokenIds: eos,
        ...(opts.maxBatchTokens ? { maxBatchTokens: opts.maxBatchTokens } : {}),
        ...(opts.maxRunningSequences ? { maxRunningSequences: opts.maxRunningSequences } : {}),
        ...(opts.maxCacheTokens ? { maxCacheTokens: opts.maxCacheTokens } : {}),
        ...(swap !== undefined && swap !== -1 ? { maxSwapTokens: swap } : {}),
      },
      (finished, done) => {
        for (const p of done) onPrompt(p.prompt, p.generations.map((g) => ({ tokens: Array.from(g.tokens), logprobs: Array.from(g.logprobs), finishReason: g.stoppedAtEos ? 'eos' : 'length' })));
        onProgress?.(finished);
      },
    ));
  }

  async createTrainer(opts: TrainerOptions): Promise<TrainerHandle> {
    this.requireCausal('createTrainer');
    checkOptimizer(opts.optimizer);
    if (opts.bucketBytes !== undefined && (!Number.isSafeInteger(opts.bucketBytes) || opts.bucketBytes < 1)) {
      throw new Error(`createTrainer: bucketBytes must be a positive integer (got ${opts.bucketBytes})`);
    }
    if (opts.gradientDtype !== undefined && opts.gradientDtype !== 'fp32' && opts.gradientDtype !== 'bf16') {
      throw new Error(`createTrainer: gradientDtype must be 'fp32' or 'bf16' (got ${JSON.stringify(opts.gradientDtype)})`);
    }
    if (opts.gradientDtype === 'bf16' && this.precision !== 'bf16') {
      throw new Error(`createTrainer: gradientDtype 'bf16' needs a bf16 model (this model was loaded in ${this.precision}); load it with precision 'bf16'`);
    }
    if (opts.gradientCheckpointing !== undefined) this.nativeModel.setGradientCheckpointing(opts.gradientCheckpointing);
    const t = new (native().Trainer)(this.nativeModel, {
      optimizer: { ...opts.optimizer },
      ...(opts.bucketBytes !== undefined ? { bucketBytes: opts.bucketBytes } : {}),
      ...(opts.communicator !== undefined ? { communicator: opts.communicator } : {}),
      ...(opts.zero1 !== undefined ? { zero1: opts.zero1 } : {}),
      ...(opts.gradientDtype !== undefined ? { gradientDtype: opts.gradientDtype } : {}),
    });
    const trainer = new EngineTrainer(t, this.nativeModel, this.limits, () => this.trainers.delete(trainer));
    this.trainers.add(trainer);
    return trainer;
  }

  cancel(): void {
    if (!this.nativeModel.freed) this.nativeModel.cancel();
  }

  /** Without `tokenizerFrom`, the tokenizer files of the folder this model was loaded from are copied. */
  async save(folder: string, opts: SaveOptions = {}): Promise<void> {
    const from = opts.tokenizerFrom ?? (this.folder && hasTokenizerFiles(this.folder) ? this.folder : undefined);
    await saveModelFolder(this.nativeModel, folder, { config: this.modelConfig, generation: this.generation }, { ...opts, tokenizerFrom: from });
  }

  /** Frees the model and the trainers made from it. */
  free(): void {
    if (!this.nativeModel.freed && this.nativeModel.busy) this.nativeModel.free(); // throws "still running"
    for (const t of [...this.trainers]) t.free();
    this.nativeModel.free();
    liveModels.delete(this);
  }
}


/** TrainerHandle over the addon's Trainer: validation in TypeScript, the math in the core. */
export class EngineTrainer implements TrainerHandle {
  constructor(
    private readonly nativeTrainer: NativeTrainer,
    private readonly nativeModel: NativeModel,
    private readonly limits: { vocabSize: number; maxLength: number | null },
    private readonly onFree: () => void,
  ) {
    this.names = nativeModel.params().map((p) => p.name);
  }

  private readonly names: string[];

  async accumulate(pairs: PreferencePair[], loss: LossType, beta: number, scale: number, last = true): Promise<StepMetrics> {
    if (!(LOSS_TYPES as readonly string[]).includes(loss)) throw new Error(`accumulate: loss must be one of ${LOSS_TYPES.join(', ')} (got '${String(loss)}')`);
    finite(beta, 'accumulate: beta');
    if (!(beta > 0)) throw new Error(`accumulate: beta must be > 0 (got ${beta})`);
    finite(scale, 'accumulate: scale');
    if (!Array.isArray(pairs) || pairs.length === 0) throw new Error('accumulate: pairs must be a non-empty array');
    const col = (f: (p: PreferencePair, i: number) => number): Float32Array => Float32Array.from(pairs.map(f));
    const side = (key: 'chosen' | 'rejected') =>
      padBatch(
        pairs.map((p) => p[key].tokens),
        this.limits,
        { promptLengths: pairs.map((p) => p[key].promptLength), what: `pairs.${key}` },
      );
    return cancellable(
      this.nativeTrainer.accumulate(
        {
          chosen: side('chosen'),
          rejected: side('rejected'),
          refChosen: col((p, i) => finite(p.refChosen, `pairs[${i}].refChosen`)),
          refRejected: col((p, i) => finite(p.refRejected, `pairs[${i}].refRejected`)),
          chosenProbs: col((p, i) => probability(p.chosenProbs, `pairs[${i}].chosenProbs`)),
          chosenProbsWin: col((p, i) => probability(p.chosenProbsWin, `pairs[${i}].chosenProbsWin`)),
          chosenProbsLose: col((p, i) => probability(p.chosenProbsLose, `pairs[${i}].chosenProbsLose`)),
          loss,
          beta,
          scale,
        },
        last,
      ),
    );
  }

  async step(lr: number, maxGradNorm: number): Promise<StepResult> {
    finite(lr, 'step: lr');
    if (lr < 0) throw new Error(`step: lr must be >= 0 (got ${lr})`);
    finite(maxGradNorm, 'step: maxGradNorm');
    const r = await cancellable(this.nativeTrainer.step(lr, maxGradNorm));
    return { gradNorm: r.gradNorm, stepped: r.stepped };
  }

  zeroGrad(): void {
    this.nativeTrainer.zeroGrad();
  }

  gradients(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const name of this.names) out.set(name, this.nativeTrainer.gradient(name));
    return out;
  }

  /** Gradient buckets and the last step's reduction order (for overlap measurements). */
  buckets(): ReturnType<NativeTrainer['buckets']> {
    return this.nativeTrainer.buckets();
  }

  async saveState(file: string | null): Promise<void> {
    if (file === null) {
      await this.nativeTrainer.saveState(null, '', 0); // a sharded save another rank writes
      return;
    }
    const info = this.nativeTrainer.stateInfo();
    const plan = buildSafetensorsHeader(
      info.entries.map((e) => ({ name: e.name, shape: [e.numel] })),
      'F32',
      { format: OPTIMIZER_FORMAT, kind: info.kind, step_count: String(info.stepCount) },
    );
    mkdirSync(dirname(file), { recursive: true });
    await this.nativeTrainer.saveState(file, plan.header, plan.dataBytes);
  }

  async loadState(file: string): Promise<void> {
    const h = readSafetensorsHeader(file);
    const meta = h.metadata;
    const kind = this.nativeTrainer.stateInfo().kind;
    if (!meta || meta.format !== OPTIMIZER_FORMAT) throw new Error(`${file}: not an sppo-native optimizer state (__metadata__.format)`);
    if (meta.kind !== kind) throw new Error(`${file}: holds '${String(meta.kind)}' optimizer state but the trainer uses '${kind}'`);
    const stepCount = Number(meta.step_count);
    if (!Number.isSafeInteger(stepCount) || stepCount < 0) throw new Error(`${file}: __metadata__.step_count must be a non-negative integer`);
    const entries = [...h.tensors.values()].map((t) => {
      if (t.dtype !== 'F32') throw new Error(`${file}: optimizer tensor '${t.name}' must be F32 (got ${t.dtype})`);
      return { name: t.name, file, offset: t.offset, nbytes: t.nbytes };
    });
    await this.nativeTrainer.loadState(entries, stepCount);
  }

  free(): void {
    this.nativeTrainer.free();
    this.onFree();
  }
}

function checkOptimizer(opts: OptimizerOptions): void {
  if (!opts || !(OPTIMIZER_KINDS as readonly string[]).includes(opts.kind)) {
    throw new Error(`optimizer kind must be one of ${OPTIMIZER_KINDS.join(', ')} (got '${String(opts?.kind)}')`);
  }
  for (const k of ['alpha', 'beta1', 'beta2', 'eps', 'weightDecay'] as const) {
    const v = opts[k];
    if (v !== undefined) finite(v, `optimizer.${k}`);
  }
}

/** Loads a Hugging Face model folder (config.json + safetensors) onto `device`. */
export async function loadModel(folder: string, opts: LoadModelOptions = {}): Promise<EngineModel> {
  const device = opts.device ?? 'cpu';
  checkDevice(device);
  const precision = checkPrecision(opts.precision ?? 'fp32');
  const { config, generation } = readModelConfig(folder);
  // Headers against config.json before the core allocates: absurd declared sizes never reach it.
  checkCheckpoint(folder, config);
  const model = createNativeModel(toNativeConfig(config), device, precision);
  try {
    await loadWeights(model, folder, config);
    if (opts.gradientCheckpointing) model.setGradientCheckpointing(true);
  } catch (err) {
    if (!model.busy) model.free();
    throw err;
  }
  return new EngineModel(model, config, generation, folder, device, precision);
}

/**
 * A model with random weights (normal(0, std) matrices, unit norms), deterministic in `seed`,
 * from a config.json object. For tests, benchmarks and the demo.
 */
export async function createRandomModel(
  configJson: Record<string, unknown>,
  seed: number,
  opts: LoadModelOptions & { std?: number } = {},
): Promise<EngineModel> {
  const device = opts.device ?? 'cpu';
  checkDevice(device);
  const precision = checkPrecision(opts.precision ?? 'fp32');
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`createRandomModel: seed must be a non-negative integer (got ${seed})`);
  const config = parseModelConfig(configJson, 'createRandomModel config');
  const model = createNativeModel(toNativeConfig(config), device, precision);
  try {
    await model.initRandom(seed, opts.std ?? 0.02);
    if (opts.gradientCheckpointing) model.setGradientCheckpointing(true);
  } catch (err) {
    if (!model.busy) model.free();
    throw err;
  }
  return new EngineModel(model, config, null, null, device, precision);
}
