// One table describes every recipe setting: its YAML path, its CLI flag, its type, its default
// (the reference recipe) and its help text. Loading, overriding, validating, --help and the
// Recipe type itself (src/recipe/types.ts) all follow from it.
import { DEVICES, GRADIENT_DTYPES, LOSS_TYPES, OPTIMIZER_KINDS } from '../native/kinds.js';
import { PAIRINGS } from '../sppo/pairs.js';
import { SCHEDULES } from '../stages/schedule.js';
import { TRUNCATIONS } from '../stages/sequences.js';
import type { Recipe } from './types.js';

export type FieldType =
  | { readonly kind: 'string'; readonly nullable?: boolean }
  | { readonly kind: 'strings' }
  | { readonly kind: 'int'; readonly min: number; readonly max?: number }
  | { readonly kind: 'number'; readonly min?: number; readonly max?: number; readonly exclusiveMin?: boolean }
  | { readonly kind: 'enum'; readonly values: readonly string[] };

/** The value a field of type `T` holds. */
export type ValueOf<T extends FieldType> = T extends { kind: 'string'; nullable: true }
  ? string | null
  : T extends { kind: 'string' }
    ? string
    : T extends { kind: 'strings' }
      ? string[]
      : T extends { kind: 'int' | 'number' }
        ? number
        : T extends { kind: 'enum'; values: readonly (infer V)[] }
          ? V
          : never;

export interface Field<P extends string = string, T extends FieldType = FieldType> {
  readonly path: P;        // YAML path, dotted
  readonly flag: string;   // CLI flag without dashes
  readonly type: T;
  readonly default: ValueOf<T>;
  readonly describe: string;
}

// Builders that keep each field's path and type literal, so that Recipe can be derived and a
// default that does not fit its type is a compile error.
const field = <const P extends string, const T extends FieldType>(path: P, flag: string, type: T, def: ValueOf<T>, describe: string): Field<P, T> => ({
  path,
  flag,
  type,
  default: def,
  describe,
});
const str = { kind: 'string' } as const;
const nullableStr = { kind: 'string', nullable: true } as const;
const strs = { kind: 'strings' } as const;
const int = <const Min extends number>(min: Min, max?: number) => (max === undefined ? { kind: 'int', min } as const : { kind: 'int', min, max } as const);
const num = (o: { min?: number; max?: number; exclusiveMin?: boolean } = {}) => ({ kind: 'number', ...o }) as const;
const oneOf = <const V extends readonly string[]>(values: V) => ({ kind: 'enum', values }) as const;

export const recipeFields = [
  field('model', 'model', str, '', 'Base model: a Hugging Face model folder (config.json, safetensors, tokenizer), or "demo" (the bundled tiny model)'),
  field('prompts', 'prompts', strs, [], 'Prompt file(s): JSONL, JSON, Parquet or a dataset folder of Parquet shards; one file (split per iteration) or one per iteration'),
  field('promptColumn', 'prompt-column', str, 'prompt', 'Column holding the prompt (text, or a chat-message list whose user turn is used)'),
  field('promptSplitName', 'prompt-split-name', nullableStr, null, 'Split of a Hugging Face dataset folder to read (e.g. train, test): default the only split, or "train" when the folder has several'),
  field('promptSplit', 'prompt-split', oneOf(['disjoint', 'reuse']), 'disjoint', 'With one prompt file: "disjoint" seeded parts per iteration (reference), or "reuse" all prompts every iteration'),
  field('maxPrompts', 'max-prompts', int(0), 0, 'At most this many prompts per iteration (0 = all)'),
  field('promptInvalidUtf8', 'prompt-invalid-utf8', oneOf(['refuse', 'replace']), 'refuse', 'Bytes of a JSON/JSONL prompt file that are not UTF-8: "refuse" the file (naming the line), or "replace" them with U+FFFD and report the count'),
  field('judge', 'judge', str, '', 'Judge: pairrm:<folder>, reward-model:<folder>, command:<cmd>, precomputed:<file>, builtin:<name>, or llm:<base-url>?model=<name> (an LLM on an OpenAI-compatible server)'),
  field('judgeTimeout', 'judge-timeout', num({ min: 0, exclusiveMin: true }), 600, 'Command judges: seconds a request may wait with no output before the judge is stopped and the work fails (a line is printed every 30 s of waiting)'),
  field('judgeStartupTimeout', 'judge-startup-timeout', num({ min: 0, exclusiveMin: true }), 600, 'Command judges: seconds allowed for the handshake line (loading its model)'),
  field('output', 'output', str, 'runs/sppo', 'Run folder (created; rerunning the same command resumes it)'),
  field('device', 'device', oneOf(DEVICES), 'cpu', 'Compute device for rollout, reference log-probs, training and model judges (PairRM, reward models): cpu, or cuda (one GPU per rank; needs a CUDA build, a visible GPU and cuBLASLt, else refused with the reason)'),
  field('precision', 'precision', oneOf(['fp32', 'bf16']), 'fp32', 'Numeric mode of the engine for every stage: fp32, or bf16 (bf16 weights and activations; fp32 gradients, statistics, master weights and optimizer state; the resume state keeps the fp32 master weights, checkpoints hold the bf16 weights). bf16 is the GPU\'s fast mode; on cpu it is emulated (bf16 storage, fp32 arithmetic), slower than fp32, for checking what a GPU run computes. Fixed for a run folder'),
  field('chatTemplate', 'chat-template', nullableStr, null, 'Jinja chat template file, for a model folder whose tokenizer_config.json has none'),
  field('seed', 'seed', int(0, 1_000_000), 42, 'Seed for prompt splits, sampling and shuffles'),
  field('iterations', 'iterations', int(1), 3, 'SPPO iterations'),
  field('rollout.k', 'k', int(2, 1999), 5, 'Responses sampled per prompt (K)'),
  field('rollout.temperature', 'temperature', num({ min: 0 }), 0.7, 'Sampling temperature'),
  field('rollout.topP', 'top-p', num({ min: 0, max: 1, exclusiveMin: true }), 0.9, 'Nucleus sampling top-p'),
  field('rollout.maxNewTokens', 'max-new-tokens', int(1), 2048, 'Most tokens generated per response'),
  field('rollout.batchSize', 'rollout-batch', int(0), 0, 'Prompts per generate call; 0 = one call over all the prompts the stage samples, across its shards, each shard written as soon as its prompts are done (within a call the engine batches continuously: finished samples leave and waiting prompts join at every step, within the budgets below, so fewer, larger calls keep it full; an openai: engine gets one call per shard). Does not change the samples'),
  field('rollout.maxBatchTokens', 'rollout-batch-tokens', int(0), 0, 'Engine rollout: most rows of one decode step (one per running sample + the prompt tokens of prompts joining in that step); 0 = automatic (2048, or the longest prompt or K when larger). Does not change the samples'),
  field('rollout.maxRunningSequences', 'rollout-max-sequences', int(0), 0, 'Engine rollout: most samples decoding at once; 0 = automatic (the batch-token budget). Does not change the samples'),
  field('rollout.maxCacheTokens', 'rollout-cache-tokens', int(0), 0, 'Engine rollout: KV-cache positions (the memory budget, in 16-position blocks); 0 = automatic (what the call needs, at most half the free memory). Does not change the samples'),
  field('rollout.maxSwapTokens', 'rollout-swap-tokens', int(-1), -1, 'Engine rollout: host-memory positions that preempted prompts\' KV blocks may be swapped out to, which lets admission overcommit the KV pool by what finished prompts used against the worst case of K samples of max-new-tokens (when the pool runs out, the prompt that joined last is swapped out and resumes later from the same bytes); -1 = automatic (3 times the KV pool, at most half the free host memory), 0 = none (a prompt joins only when its worst case fits; no preemption). Does not change the samples'),
  field('rollout.shardSize', 'shard-size', int(1), 64, 'Prompts per rollout/judge shard (the unit a rerun resumes from)'),
  field('rollout.engine', 'rollout-engine', str, 'native', 'Where rollout samples come from: "native" (the engine) or "openai:<base-url>[?model=<served name>]" (an OpenAI-compatible server: vLLM, SGLang, sppo-native serve; it must serve the current policy, see --rollout-server-command)'),
  field('rollout.serverCommand', 'rollout-server-command', nullableStr, null, 'With an openai: rollout engine, a command the run starts each iteration to serve the policy, with {model} (the policy folder) and {port} (the base URL\'s port), e.g. "vllm serve {model} --port {port}"; stopped after the rollout'),
  field('rollout.serverStartupSeconds', 'rollout-server-startup', int(1), 900, 'How long a started rollout server may take to answer /v1/models'),
  field('lengths.maxPromptTokens', 'max-prompt-tokens', int(1), 512, 'Longer prompts keep their last tokens'),
  field('lengths.maxLength', 'max-length', int(2), 1024, 'Prompt + response tokens in training; longer responses are cut'),
  field('lengths.truncation', 'truncation', oneOf(TRUNCATIONS), 'reference', 'How training pairs are cut to max-length: "reference" (the reference trainer: when prompt + the longer response exceeds max-length, the prompt keeps its last max-prompt-tokens and then both responses are cut to max-length - max-prompt-tokens) or "fit" (each response cut to the room its prompt leaves)'),
  field('sppo.eta', 'eta', num({ min: 0, exclusiveMin: true }), 1000, 'SPPO eta = 1/beta'),
  field('sppo.loss', 'loss', oneOf(LOSS_TYPES), 'sppo', 'Loss'),
  field('sppo.pairing', 'pairing', oneOf(PAIRINGS), 'best-worst', 'Training pairs: "best-worst" (reference) or "all" (Algorithm 1)'),
  field('train.lr', 'lr', num({ min: 0, exclusiveMin: true }), 5e-7, 'Peak learning rate'),
  field('train.optimizer', 'optimizer', oneOf(OPTIMIZER_KINDS), 'rmsprop', 'Optimizer'),
  field('train.weightDecay', 'weight-decay', num({ min: 0 }), 0, 'Weight decay: decoupled for AdamW (as torch.optim.AdamW); for RMSprop an L2 term added to the gradient (as torch.optim.RMSprop)'),
  field('train.schedule', 'schedule', oneOf(SCHEDULES), 'linear', 'Learning-rate schedule after warmup'),
  field('train.warmupRatio', 'warmup-ratio', num({ min: 0, max: 1 }), 0.1, 'Fraction of steps spent warming up'),
  field('train.globalBatch', 'global-batch', int(1), 64, 'Pairs per optimizer step'),
  field('train.microBatch', 'micro-batch', int(1), 4, 'Pairs per forward/backward (global batch must be a multiple)'),
  field('train.gradientCheckpointing', 'gradient-checkpointing', oneOf(['off', 'on']), 'off', 'Recompute each layer in backward instead of keeping its activations: "on" stores only the layers\' inputs (less memory, about a third more compute)'),
  field('train.gradientDtype', 'gradient-dtype', oneOf(GRADIENT_DTYPES), 'fp32', 'Gradient buffers of training: fp32, or bf16 (precision bf16 only): 2 bytes a parameter instead of 4, while the master weights, optimizer state and the step stay fp32; each backward op rounds its fp32 sum into the bf16 gradients once, so gradients carry a bf16 rounding per op and per micro-batch accumulated. Fixed for a run folder'),
  field('train.maxGradNorm', 'max-grad-norm', num({ min: 0 }), 1.0, 'Gradient clipping norm (0 = off)'),
  field('train.epochs', 'epochs', int(1), 1, 'Epochs per iteration (a checkpoint each)'),
  field('train.selectedEpoch', 'selected-epoch', int(1), 1, 'The epoch whose checkpoint becomes the next policy'),
  field('train.resumeEvery', 'resume-every', int(1), 50, 'Save a resume state every this many steps'),
  field('train.saveDtype', 'save-dtype', oneOf(['float32', 'bfloat16']), 'float32', 'Checkpoint dtype'),
  field('eval.prompts', 'eval-prompts', int(0), 0, 'After each iteration, judge this many prompts of pi_t+1 against pi_0 (0 = off)'),
  field('eval.samples', 'eval-samples', int(1), 1, 'Samples per eval prompt'),
] as const;

export type RecipeField = (typeof recipeFields)[number];

export const fieldByPath: ReadonlyMap<string, Field> = new Map(recipeFields.map((f): [string, Field] => [f.path, f]));

export function getPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

export function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur = obj;
  for (const part of parts.slice(0, -1)) {
    if (cur[part] === undefined || typeof cur[part] !== 'object' || cur[part] === null) cur[part] = {};
    cur = cur[part] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]!] = value;
}

export function defaultRecipe(): Recipe {
  const r: Record<string, unknown> = {};
  for (const f of recipeFields) setPath(r, f.path, structuredClone(f.default));
  return r as unknown as Recipe; // built from every field of the table Recipe is derived from
}
