// The typed surface of the addon's Model class (native/addon/model_binding.cpp and friends).
import { native } from '../native.js';
import type { NativeLlamaConfig } from './config.js';
import type { StepMetrics } from './types.js';

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

export interface NativeGeneration {
  tokens: Int32Array;
  logprobs: Float32Array;
  stoppedAtEos: boolean;
}

/** The addon returns the metrics in the engine's own shape. */
export type NativeStepMetrics = StepMetrics;

export interface NativePairs {
  chosen: NativeBatch;
  rejected: NativeBatch;
  refChosen: Float32Array;
  refRejected: Float32Array;
  chosenProbs: Float32Array;
  chosenProbsWin: Float32Array;
  chosenProbsLose: Float32Array;
  loss: string;
  beta: number;
  scale: number;
}

export interface NativeOptimizerOptions {
  kind: string;
  alpha?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export interface NativeOptimizerStateInfo {
  kind: string;
  stepCount: number;
  entries: { name: string; numel: number }[];
}

export interface NativeModel {
  readonly busy: boolean;
  readonly freed: boolean;
  params(): { name: string; shape: number[] }[];
  initRandom(seed: number, std?: number): Promise<void>;
  setGradientCheckpointing(on: boolean): void;
  logits(batch: NativeBatch): Promise<Float32Array>;
  scores(batch: NativeBatch): Promise<Float32Array>;
  sequenceLogprobs(batch: NativeBatch): Promise<Float32Array>;
  generate(
    prompts: Int32Array[],
    seeds: number[],
    opts: { maxNewTokens: number; temperature: number; topP: number; topK?: number; greedy?: boolean; eosTokenIds: number[] },
  ): Promise<NativeGeneration[]>;
  accumulate(pairs: NativePairs): Promise<NativeStepMetrics>;
  zeroGrad(): void;
  gradient(name: string): Float32Array;
  readParam(name: string): Float32Array;
  free(): void;
  loadTensors(entries: NativeTensorRange[]): Promise<void>;
  saveTensors(file: string, headerJson: string, names: string[], dtype: string, dataBytes: number): Promise<void>;
  optimizerStep(lr: number, maxGradNorm: number, opts: NativeOptimizerOptions): Promise<{ gradNorm: number; stepped: boolean }>;
  optimizerStateInfo(): Promise<NativeOptimizerStateInfo | null>;
  saveOptimizerState(file: string, headerJson: string, dataBytes: number): Promise<void>;
  loadOptimizerState(
    entries: { name: string; file: string; offset: number; nbytes: number }[],
    stepCount: number,
    opts: NativeOptimizerOptions,
  ): Promise<void>;
}

type ModelClass = new (config: NativeLlamaConfig) => NativeModel;

export function createNativeModel(config: NativeLlamaConfig): NativeModel {
  const Model = native().Model as ModelClass | undefined;
  if (typeof Model !== 'function') throw new Error('sppo-native: this build of the addon has no Model class (rebuild it)');
  return new Model(config);
}
