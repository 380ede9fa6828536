// The TypeScript face of the model engine (CONTRACT between the engine bindings in src/model/
// and the SPPO pipeline). Implemented by src/model/engine.ts.
import type { DeviceName, LossType, OptimizerKind } from '../native/kinds.js';

export type { LossType, OptimizerKind };

/** One sequence: prompt tokens then response tokens; only the response is scored. */
export interface ScoredSequence {
  tokens: number[];
  /** Number of leading prompt tokens; tokens[promptLength..] are the response. */
  promptLength: number;
}

export interface PreferencePair {
  chosen: ScoredSequence;
  rejected: ScoredSequence;
  refChosen: number;       // log pi_ref(y_w|x), summed over response tokens
  refRejected: number;
  chosenProbs: number;     // P_wl
  chosenProbsWin: number;  // p_w
  chosenProbsLose: number; // p_l
}

export interface StepMetrics {
  loss: number;
  rewardsChosen: number;
  rewardsRejected: number;
  margins: number;
  accuracy: number;
  policyChosenLogp: number;
  policyRejectedLogp: number;
  tokens: number;
}

export interface GenerateOptions {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  topK?: number;
  greedy?: boolean;
  eosTokenIds: number[];
}

export interface Generation {
  tokens: number[];        // generated tokens (includes the stopping EOS)
  logprobs: number[];      // sampling log-probability of each
  finishReason: 'eos' | 'length';
}

export interface OptimizerOptions {
  kind: OptimizerKind;
  alpha?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export interface SaveOptions {
  /** Folder whose tokenizer files (tokenizer.json, tokenizer_config.json, ...) are copied. */
  tokenizerFrom?: string;
  /** Shard above this many bytes (default 5 GB, as transformers). */
  maxShardBytes?: number;
  dtype?: 'float32' | 'bfloat16';
}

export interface ModelHandle {
  readonly folder: string | null;
  readonly config: Readonly<Record<string, unknown>>; // the config.json as loaded
  readonly device: DeviceName;
  readonly vocabSize: number;
  readonly eosTokenIds: number[];
  readonly isRewardModel: boolean;

  logits(seqs: number[][]): Promise<Float32Array[]>;               // [len, V] per sequence
  sequenceLogprobs(seqs: ScoredSequence[]): Promise<Float64Array>; // summed response log-probs
  scores(seqs: number[][]): Promise<Float32Array>;                 // reward model: one per sequence
  /** seeds[i] seeds prompt i alone: its samples do not depend on the batch. */
  generate(prompts: number[][], seeds: number[], opts: GenerateOptions): Promise<Generation[]>;

  /** Micro-batch: loss + backward, gradients accumulate scaled by `scale`. */
  accumulate(pairs: PreferencePair[], loss: LossType, beta: number, scale: number): Promise<StepMetrics>;
  /**
   * Clip, step the optimizer (created on first use from `opts`), zero gradients. `stepped` is
   * false when the gradient norm is not finite: the weights and optimizer state are left as they were.
   */
  optimizerStep(lr: number, maxGradNorm: number, opts: OptimizerOptions): Promise<{ gradNorm: number; stepped: boolean }>;
  zeroGrad(): void;
  gradients(): Map<string, Float32Array>;

  save(folder: string, opts?: SaveOptions): Promise<void>;
  /** Optimizer state (and step count) for resume, in one safetensors file, written atomically. */
  saveOptimizerState(file: string): Promise<void>;
  loadOptimizerState(file: string, opts: OptimizerOptions): Promise<void>;
  free(): void;
}
