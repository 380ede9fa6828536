// The one place the native addon is loaded, and its whole surface typed once: free functions
// (build info, kernels), the kind lists, and the classes Model, PairRM, Trainer and Communicator (one JS
// object per native object, native/addon/*_binding.cpp). Everything else in src/ goes through
// these types; policy and validation live in TypeScript, the addon only moves bytes and does math.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DeviceName, GradientDtype, LossType, OptimizerKind } from './kinds.js';

export type { DeviceName } from './kinds.js';

const require = createRequire(import.meta.url);
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

// ---- info_binding.cpp ------------------------------------------------------------------------------
export interface BuildInfo {
  cuda: boolean;
  cudaArchs: string;
  /** cuBLASLt loaded at run time (CUDA builds: the build never links it). */
  cublasLt: boolean;
  /** Its version and library file when loaded, else why it is not. */
  cublasLtDetail: string;
  /** libnccl.so.2 loads here (NCCL is loaded at run time; every build has the NCCL communicator). */
  nccl: boolean;
  ncclVersion: string;
  /** Why NCCL does not load, when it does not. */
  ncclReason: string;
  openmp: boolean;
  cpuThreads: number;
}

export interface CudaDevice {
  index: number;
  name: string;
  computeCapability: string;
  totalMemory: number;
}

// ---- kernels_binding.cpp (src/kernels/ validates before calling) ---------------------------------------
export interface NativeSppoLossArgs {
  policyChosen: Float32Array;
  policyRejected: Float32Array;
  refChosen: Float32Array;
  refRejected: Float32Array;
  chosenProbs?: Float32Array;
  chosenProbsWin?: Float32Array;
  chosenProbsLose?: Float32Array;
  beta: number;
  lossType: LossType;
  device: DeviceName;
}

export interface LossSummary {
  loss: number;
  rewardsChosen: number;
  rewardsRejected: number;
  margins: number;
  accuracy: number;
}

export interface SppoLossResult {
  losses: Float32Array;
  /** d mean loss / d policyChosen. */
  gradChosen: Float32Array;
  gradRejected: Float32Array;
  /** beta * (policy - ref). */
  rewardsChosen: Float32Array;
  rewardsRejected: Float32Array;
  summary: LossSummary;
}

// ---- model_binding.cpp, model_io_binding.cpp --------------------------------------------------------
export type RopeType = 'default' | 'linear' | 'llama3';
export type Precision = 'fp32' | 'fp64' | 'bf16';
/** PairRM's modes: the Llama model's and fp16 (inference only: the Llama model refuses it). */
export type PairRmPrecision = Precision | 'fp16';

/** The core's LlamaConfig (native/model/llama_config.h); src/model/config.ts builds it from config.json. */
export interface NativeLlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeType: RopeType;
  ropeFactor: number;
  ropeLowFreqFactor: number;
  ropeHighFreqFactor: number;
  ropeOriginalMaxPosition: number;
  tieWordEmbeddings: boolean;
  sequenceClassification: boolean;
  numLabels: number;
}

export interface NativeBatch {
  tokens: Int32Array;
  attentionMask: Uint8Array;
  responseMask?: Uint8Array;
  B: number;
  T: number;
}

export interface NativeTensorRange {
  name: string;
  file: string;
  offset: number;
  nbytes: number;
  dtype: string;
}

export interface NativeGenerateOptions {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  topK?: number;
  greedy?: boolean;
  eosTokenIds: number[];
  /** Continuous-batching budgets (native/model/scheduler.h); absent or 0 = automatic. Rows of one decode step (running samples + newcomers' prompt tokens). */
  maxBatchTokens?: number;
  /** Samples decoding at once. */
  maxRunningSequences?: number;
  /** KV-cache positions (the memory budget; rounded down to 16-position blocks). */
  maxCacheTokens?: number;
  /** Host positions for preempted prompts' KV blocks; absent = automatic, 0 = none (worst-case admission). */
  maxSwapTokens?: number;
}

export interface NativeGeneration {
  tokens: Int32Array;
  logprobs: Float32Array;
  stoppedAtEos: boolean;
}

/** What the scheduler did in a generate call (model_binding.cpp StatsToJs; native/model/generate.h GenerateStats). */
export interface NativeGenerateStats {
  steps: number;               // decode calls
  mixedSteps: number;          // steps that prefilled newcomers while others decoded
  prefillTokens: number;
  decodeTokens: number;
  bucketedSteps: number;       // decode-only steps padded to a bucket (CUDA graphs)
  peakRunning: number;         // most samples decoding at once
  maxRunningSequences: number; // its budget (resolved)
  maxBatchTokens: number;
  kvBlocks: number;            // the KV pool
  blockSize: number;
  peakBlocksInUse: number;
  swapBlocks: number;          // host swap space (0: the worst case reserved)
  preemptions: number;         // prompts swapped out
  swappedOutBlocks: number;
  peakSwappedBlocks: number;
}

/** A prompt whose samples all finished (model_binding.cpp generate). */
export interface NativeFinishedPrompt {
  prompt: number;
  generations: NativeGeneration[];
}

export interface NativeMemoryPlan {
  weights: number;
  activations: number;
  head: number;
  total: number;
}

export interface NativeModel {
  readonly busy: boolean;
  readonly freed: boolean;
  readonly device: DeviceName;
  /** Parameters in arena order (the order backward finishes them), with element offsets. */
  params(): { name: string; shape: number[]; offset: number }[];
  initRandom(seed: number, std?: number): Promise<void>;
  setGradientCheckpointing(on: boolean): void;
  logits(batch: NativeBatch): Promise<Float32Array>;
  scores(batch: NativeBatch): Promise<Float32Array>;
  sequenceLogprobs(batch: NativeBatch): Promise<Float32Array>;
  /**
   * Samples samplesPerPrompt generations of each prompt; sample k of prompt i uses Philox(seeds[i], k, step).
   * `onReport` is called at the step boundaries at which samples finished, with the number of
   * generations finished so far (rising, the last report all of them) and the prompts whose samples
   * all finished in that step (each prompt exactly once over the call, K generations each, sample
   * k at k). Every report comes before the promise settles; when `onReport` throws, the call is
   * cancelled and rejects with its error. The addon keeps no generation.
   */
  generate(
    prompts: Int32Array[], samplesPerPrompt: number, seeds: number[], opts: NativeGenerateOptions,
    onReport: (finished: number, done: NativeFinishedPrompt[]) => void,
  ): Promise<NativeGenerateStats>;
  readParam(name: string): Float32Array;
  memoryPlan(rows: number, training: boolean): NativeMemoryPlan;
  /** Stops the call in flight (it rejects with "cancelled") within about one decode step or layer. */
  cancel(): void;
  free(): void;
  loadTensors(entries: NativeTensorRange[]): Promise<void>;
  saveTensors(file: string, headerJson: string, names: string[], dtype: string, dataBytes: number): Promise<void>;
}

// ---- pairrm_binding.cpp -------------------------------------------------------------------------------
/** The core's PairRmConfig (native/model/pairrm_config.h); src/pairrm/config.ts builds it from config.json. */
export interface NativePairRmConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  headDim: number;
  layerNormEps: number;
  /** > 0: DeBERTa's log buckets; 0: plain clamped offsets. */
  positionBuckets: number;
  /** Resolved (config.json's -1 means max_position_embeddings). */
  maxRelativePositions: number;
  c2p: boolean;
  p2c: boolean;
  normRelEmbeddings: boolean;
  numTasks: number;
}

/** Ordered pairs packed back to back (no padding); slots: 3 positions per sequence, within it. */
export interface NativePairBatch {
  tokens: Int32Array;
  lengths: Int32Array;
  slots: Int32Array;
}

export interface NativePairRm {
  readonly busy: boolean;
  readonly freed: boolean;
  readonly device: DeviceName;
  params(): { name: string; shape: number[]; offset: number }[];
  initRandom(seed: number, std?: number): Promise<void>;
  loadTensors(entries: NativeTensorRange[]): Promise<void>;
  /** Per sequence: h([e_s; e_1]) - h([e_s; e_2]) averaged over tasks (> 0: the first candidate wins). */
  compare(batch: NativePairBatch): Promise<Float64Array>;
  /** The encoder's last hidden states, [sum of lengths, hidden]. */
  hiddenStates(batch: NativePairBatch): Promise<Float64Array>;
  memoryPlan(tokens: number, sequences: number): { weights: number; activations: number; total: number };
  /** Stops the call in flight (it rejects with "cancelled") within about a layer. */
  cancel(): void;
  free(): void;
}

// ---- trainer_binding.cpp -----------------------------------------------------------------------------
export interface NativeOptimizerOptions {
  kind: OptimizerKind;
  alpha?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export interface NativePairs {
  chosen: NativeBatch;
  rejected: NativeBatch;
  refChosen: Float32Array;
  refRejected: Float32Array;
  chosenProbs: Float32Array;
  chosenProbsWin: Float32Array;
  chosenProbsLose: Float32Array;
  loss: LossType;
  beta: number;
  scale: number;
}

export interface NativeStepMetrics extends LossSummary {
  policyChosenLogp: number;
  policyRejectedLogp: number;
  tokens: number;
}

export interface NativeTrainerStateInfo {
  kind: OptimizerKind;
  stepCount: number;
  entries: { name: string; numel: number }[];
}

export interface NativeBuckets {
  buckets: { begin: number; end: number }[];
  /**
   * The last step's buckets in the order they were queued: `seconds` since its last micro-batch
   * began (its forward) when backward had finished the bucket, `reducedSeconds` when its
   * reduction had finished (NaN where the communicator cannot tell).
   */
  events: { bucket: number; seconds: number; reducedSeconds: number }[];
}

export interface NativeTrainer {
  readonly freed: boolean;
  /** One micro-batch; `last`: the step's last, whose backward reduces gradient buckets as it goes. */
  accumulate(pairs: NativePairs, last: boolean): Promise<NativeStepMetrics>;
  step(lr: number, maxGradNorm: number): Promise<{ gradNorm: number; stepped: boolean }>;
  zeroGrad(): void;
  gradient(name: string): Float32Array;
  stateInfo(): NativeTrainerStateInfo;
  /** file null: take part in a sharded (ZeRO-1) save that another rank writes. */
  saveState(file: string | null, headerJson: string, dataBytes: number): Promise<void>;
  loadState(entries: { name: string; file: string; offset: number; nbytes: number }[], stepCount: number): Promise<void>;
  buckets(): NativeBuckets;
  free(): void;
}

// ---- communicator_binding.cpp --------------------------------------------------------------------------
export interface NativeCommunicator {
  readonly rank: number;
  readonly worldSize: number;
  readonly kind: 'local' | 'host' | 'nccl';
  readonly freed: boolean;
  barrier(): Promise<void>;
  /** The sums over the ranks (host: in rank order, bitwise reproducible). */
  allReduce(values: Float64Array): Promise<Float64Array>;
  /** Collectives in flight and later ones fail with `reason` (on every rank the kind can reach). */
  abort(reason: string): void;
  free(): void;
}

export type NativeConnectOptions =
  | { kind: 'host'; name: string; rank: number; worldSize: number; timeoutMs: number; heartbeatMs?: number }
  | { kind: 'nccl'; id: Uint8Array; rank: number; worldSize: number; timeoutMs: number };

// ---- memory_plan_binding.cpp --------------------------------------------------------------------------
/** One line of a stage's memory plan (native/train/memory_plan.h), in bytes. */
export interface NativePlanItem {
  name: string;
  bytes: number;
  detail: string;
}

export interface NativeStagePlan {
  stage: string;
  items: NativePlanItem[];
  total: number;
  /** Generation plans: the paged KV pool (its 'KV cache' item's bytes hold it and the block tables). */
  kv?: { blocks: number; blockSize: number };
}

/** What to plan: no model is needed, only its config. */
export type NativeMemoryPlanRequest =
  | {
      kind: 'training'; config: NativeLlamaConfig; precision: Precision;
      /** Pairs per micro-batch (each a chosen and a rejected row) of seqLen positions. */
      pairs: number; seqLen: number; checkpointing: boolean; optimizer: string;
      world?: number; zero1?: boolean; bucketBytes?: number;
      /** The trainer's gradient arena: fp32 (default) or bf16 (bf16 precision only). */
      gradientDtype?: GradientDtype;
    }
  | { kind: 'inference'; config: NativeLlamaConfig; precision: Precision; rows: number; seqLen: number; head: 'logprobs' | 'scores' | 'logits' }
  | { kind: 'generation'; config: NativeLlamaConfig; precision: Precision; prompts: number; samples: number; promptLen: number; maxNewTokens: number; greedy?: boolean; maxBatchTokens?: number; maxRunningSequences?: number; maxCacheTokens?: number; maxSwapTokens?: number; decodeBuckets?: boolean }
  | { kind: 'pairrm'; config: NativePairRmConfig; precision: PairRmPrecision; tokens: number; sequences: number };

/** The raw addon surface. Each section is owned by one binding file in native/addon/. */
export interface NativeAddon {
  buildInfo(): BuildInfo;
  cudaDevices(): { devices: CudaDevice[]; reason: string };
  lossTypes: string[];
  optimizerKinds: string[];
  logprobForward(args: {
    logits: Float32Array | Uint16Array; dtype: 'f32' | 'bf16'; rows: number; vocab: number;
    labels: Int32Array; device: DeviceName;
  }): Promise<{ tokenLogp: Float32Array; lse: Float32Array }>;
  logprobBackward(args: {
    logits: Float32Array | Uint16Array; dtype: 'f32' | 'bf16'; rows: number; vocab: number;
    labels: Int32Array; gradToken: Float32Array; lse?: Float32Array; inPlace: boolean;
    gradDtype: 'f32' | 'bf16'; device: DeviceName;
  }): Promise<Float32Array | Uint16Array>;
  maskedSequenceSum(args: {
    tokenLogp: Float32Array; mask: Uint8Array; batch: number; seqLen: number; device: DeviceName;
  }): Promise<Float32Array>;
  sppoLoss(args: NativeSppoLossArgs): Promise<SppoLossResult>;
  Model: new (config: NativeLlamaConfig, opts?: { device?: DeviceName; precision?: Precision }) => NativeModel;
  PairRM: new (config: NativePairRmConfig, opts?: { device?: DeviceName; precision?: PairRmPrecision }) => NativePairRm;
  Trainer: new (
    model: NativeModel,
    opts: { optimizer: NativeOptimizerOptions; communicator?: NativeCommunicator; bucketBytes?: number; zero1?: boolean; gradientDtype?: GradientDtype },
  ) => NativeTrainer;
  Communicator: new (opts?: { kind?: 'local'; device?: DeviceName }) => NativeCommunicator;
  /** Rank 0 makes the group (host: creates the shared memory); resolves once every rank joined. */
  connectCommunicator(opts: NativeConnectOptions): Promise<NativeCommunicator>;
  /** A fresh shared-memory name for a host communicator (rank 0). */
  hostCommunicatorName(): string;
  /** A new NCCL communicator id (rank 0; throws when libnccl.so.2 does not load). */
  ncclUniqueId(): Uint8Array;
  /** The bytes one stage allocates, from configs and shapes alone (native/train/memory_plan.h). */
  planMemory(request: NativeMemoryPlanRequest): NativeStagePlan;
  /** Bytes a new allocation can get on `device` now (the host's available memory on the CPU). */
  availableMemory(device: DeviceName): number;
  /** The GPU this process uses (its LOCAL_RANK); before the CUDA backend is first used. */
  selectCudaDevice(index: number): void;
}

let cached: NativeAddon | undefined;

/** Loads the addon once; a clear error says how to build it when it is missing. */
export function native(): NativeAddon {
  if (cached) return cached;
  try {
    // SPPO_ADDON_PATH points at a specific .node file (a second build tree, a debug build).
    const explicit = process.env.SPPO_ADDON_PATH;
    if (explicit) {
      cached = require(explicit) as NativeAddon;
    } else {
      const load = require('node-gyp-build') as (dir: string) => NativeAddon;
      cached = load(packageRoot);
    }
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(
      `sppo-native: the native addon could not be loaded (${msg}). ` +
        'Build it with `npm run build:native` (needs a C++17 compiler; CMake for the CUDA backend).',
    );
  }
  return cached;
}

/** True when the CUDA backend is compiled in and at least one GPU is visible. */
export function cudaAvailable(): boolean {
  const addon = native();
  return addon.buildInfo().cuda && addon.cudaDevices().devices.length > 0;
}

/** Throws a clear error when `device` cannot be used by this build on this machine. */
export function requireDevice(device: DeviceName): void {
  if (device === 'cpu') return;
  if (device !== 'cuda') throw new Error(`device must be 'cpu' or 'cuda' (got '${String(device)}')`);
  const addon = native();
  if (!addon.buildInfo().cuda) {
    throw new Error("device 'cuda' is not available: this build of sppo-native has no CUDA backend (rebuild with nvcc on PATH, SPPO_CUDA=on)");
  }
  const { devices, reason } = addon.cudaDevices();
  if (devices.length === 0) throw new Error(`device 'cuda' is not available: ${reason || 'no CUDA devices visible'}`);
}

/** Throws a clear error when cuBLASLt (the CUDA backend's matrix products) could not be loaded. */
export function requireCublasLt(): void {
  const build = native().buildInfo();
  if (!build.cublasLt) throw new Error(`device 'cuda' cannot run models: ${build.cublasLtDetail}`);
}
