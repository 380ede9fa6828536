// The TypeScript face of the model engine (CONTRACT between the engine bindings in src/model/
// and the SPPO pipeline). Implemented by src/model/engine.ts.
import type { DeviceName, GradientDtype, LossType, OptimizerKind } from '../native/kinds.js';
import type { NativeCommunicator, NativeGenerateStats } from '../native/addon.js';

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
  /** Samples per prompt (default 1), drawn from one shared prefill of the prompt. */
  samples?: number;
  /**
   * Continuous-batching budgets of the engine (native/model/scheduler.h), absent or 0 = automatic;
   * they never change the generations. Rows of one decode step: one per running sample plus the
   * prompt tokens of prompts joining in that step (at least the longest prompt and `samples`).
   */
  maxBatchTokens?: number;
  /** Samples decoding at once (at least `samples`). */
  maxRunningSequences?: number;
  /** KV-cache positions, the memory budget (at least one prompt with its samples of maxNewTokens). */
  maxCacheTokens?: number;
  /**
   * Host-memory positions preempted prompts may be swapped out to (absent or -1 = automatic, 0 =
   * none). With some, admission overcommits the KV pool by what the call's finished prompts used
   * against their samples' worst case, and when the pool runs out the prompt that joined last is
   * swapped out and resumes later from the same bytes; with none, a prompt joins only when its
   * worst case fits.
   */
  maxSwapTokens?: number;
  /**
   * Called during the call with the number of generations finished so far (rising, the last call
   * reporting all of them), never after the promise settles. If it throws, the call is cancelled
   * and rejects with what it threw. Handles that cannot report may ignore it.
   */
  onProgress?: (finished: number) => void;
}

export interface Generation {
  tokens: number[];        // generated tokens (includes the stopping EOS)
  logprobs: number[];      // sampling log-probability of each
  finishReason: 'eos' | 'length';
}

/** What the engine's scheduler did in one generate call (the native type, src/native/addon.ts). */
export type GenerateStats = NativeGenerateStats;

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

export interface TrainerOptions {
  optimizer: OptimizerOptions;
  /** Gradient bytes per all-reduce bucket (default 25 MiB). */
  bucketBytes?: number;
  /** Data parallel: the ranks' communicator (src/dist/); default a world of one. */
  communicator?: NativeCommunicator;
  /** Shard the optimizer state over the ranks (ZeRO-1); the same results as without. */
  zero1?: boolean;
  /** Recompute each layer in backward instead of storing its activations (the same gradients, less memory). */
  gradientCheckpointing?: boolean;
  /**
   * The gradient buffers: fp32 (default), or bf16 for a bf16 model only (half the gradient memory;
   * the master weights, optimizer state and step stay fp32; each backward op rounds into the bf16
   * gradients once, micro-batches accumulate with one rounding each).
   */
  gradientDtype?: GradientDtype;
}

/** What an optimizer step did: `stepped` is false when the gradient norm was not finite. */
export interface StepResult {
  gradNorm: number;
  stepped: boolean;
}

/**
 * The training state of one model (CONTRACT): gradients, the optimizer and its state. A model used
 * only for inference has none of it.
 */
export interface TrainerHandle {
  /**
   * One micro-batch: loss + backward, gradients accumulate scaled by `scale`. `last` (default
   * true): this is the optimizer step's last micro-batch (its gradients are reduced across ranks
   * during its backward). Under data parallelism the ranks' gradients are summed: `scale` is the
   * micro-batch's share of the GLOBAL batch, so that the sum is the global mean.
   */
  accumulate(pairs: PreferencePair[], loss: LossType, beta: number, scale: number, last?: boolean): Promise<StepMetrics>;
  /**
   * Clip, step the optimizer, zero gradients. `stepped` is false when the gradient norm is not
   * finite: the weights and optimizer state are left as they were.
   */
  step(lr: number, maxGradNorm: number): Promise<StepResult>;
  zeroGrad(): void;
  gradients(): Map<string, Float32Array>;
  /**
   * Optimizer state (and step count) for resume, in one safetensors file, written atomically.
   * Under ZeRO-1 every rank calls it (the state is gathered); the ranks that do not write pass null.
   */
  saveState(file: string | null): Promise<void>;
  loadState(file: string): Promise<void>;
  free(): void;
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
  /**
   * opts.samples (default 1) samples per prompt, prompt-major. Sample k of prompt i draws from
   * Philox(seeds[i], k, step): it does not depend on the rest of the batch.
   */
  generate(prompts: number[][], seeds: number[], opts: GenerateOptions): Promise<Generation[]>;
  /**
   * As generate, but each prompt's samples go to `onPrompt(i, generations)` as soon as they have all
   * finished (in the order they finish, each prompt once, all before the promise settles) and none
   * is kept: for calls over many prompts, whose results are written as they come (the rollout
   * stage). The same generations as generate's. If `onPrompt` throws, the call is cancelled and
   * rejects with what it threw. Resolves to what the scheduler did, or null for a handle without one.
   */
  generateEach(prompts: number[][], seeds: number[], opts: GenerateOptions, onPrompt: (prompt: number, generations: Generation[]) => void): Promise<GenerateStats | null>;
  /** Gradients and an optimizer for this model. */
  createTrainer(opts: TrainerOptions): Promise<TrainerHandle>;
  /** Stops the native call in flight (it rejects with a CancelledError) within about one step. */
  cancel(): void;

  save(folder: string, opts?: SaveOptions): Promise<void>;
  free(): void;
}
