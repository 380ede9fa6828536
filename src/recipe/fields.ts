// One table describes every recipe setting: its YAML path, its CLI flag, its type, its default
// (the reference recipe) and its help text. Loading, overriding, validating and --help all read it.
import type { Recipe } from './types.js';

export type FieldType =
  | { kind: 'string'; nullable?: boolean }
  | { kind: 'strings' }
  | { kind: 'int'; min: number; max?: number }
  | { kind: 'number'; min?: number; max?: number; exclusiveMin?: boolean }
  | { kind: 'enum'; values: readonly string[] };

export interface Field {
  path: string;        // YAML path, dotted
  flag: string;        // CLI flag without dashes
  type: FieldType;
  default: unknown;
  describe: string;
}

export const recipeFields: readonly Field[] = [
  { path: 'model', flag: 'model', type: { kind: 'string' }, default: '', describe: 'Base model: a Hugging Face model folder (config.json, safetensors, tokenizer), or "demo" (the bundled tiny model)' },
  { path: 'prompts', flag: 'prompts', type: { kind: 'strings' }, default: [], describe: 'Prompt file(s): JSONL, JSON, Parquet or a dataset folder of Parquet shards; one file (split per iteration) or one per iteration' },
  { path: 'promptColumn', flag: 'prompt-column', type: { kind: 'string' }, default: 'prompt', describe: 'Column holding the prompt (text, or a chat-message list whose user turn is used)' },
  { path: 'promptSplitName', flag: 'prompt-split-name', type: { kind: 'string', nullable: true }, default: null, describe: 'Split of a Hugging Face dataset folder to read (e.g. train, test): default the only split, or "train" when the folder has several' },
  { path: 'promptSplit', flag: 'prompt-split', type: { kind: 'enum', values: ['disjoint', 'reuse'] }, default: 'disjoint', describe: 'With one prompt file: "disjoint" seeded parts per iteration (reference), or "reuse" all prompts every iteration' },
  { path: 'maxPrompts', flag: 'max-prompts', type: { kind: 'int', min: 0 }, default: 0, describe: 'At most this many prompts per iteration (0 = all)' },
  { path: 'judge', flag: 'judge', type: { kind: 'string' }, default: '', describe: 'Judge: reward-model:<folder>, command:<cmd>, precomputed:<file>, or builtin:<name>' },
  { path: 'output', flag: 'output', type: { kind: 'string' }, default: 'runs/sppo', describe: 'Run folder (created; rerunning the same command resumes it)' },
  { path: 'device', flag: 'device', type: { kind: 'enum', values: ['cpu', 'cuda'] }, default: 'cpu', describe: 'Compute device' },
  { path: 'chatTemplate', flag: 'chat-template', type: { kind: 'string', nullable: true }, default: null, describe: 'Jinja chat template file, for a model folder whose tokenizer_config.json has none' },
  { path: 'seed', flag: 'seed', type: { kind: 'int', min: 0, max: 1_000_000 }, default: 42, describe: 'Seed for prompt splits, sampling and shuffles' },
  { path: 'iterations', flag: 'iterations', type: { kind: 'int', min: 1 }, default: 3, describe: 'SPPO iterations' },
  { path: 'rollout.k', flag: 'k', type: { kind: 'int', min: 2, max: 1999 }, default: 5, describe: 'Responses sampled per prompt (K)' },
  { path: 'rollout.temperature', flag: 'temperature', type: { kind: 'number', min: 0 }, default: 0.7, describe: 'Sampling temperature' },
  { path: 'rollout.topP', flag: 'top-p', type: { kind: 'number', min: 0, max: 1, exclusiveMin: true }, default: 0.9, describe: 'Nucleus sampling top-p' },
  { path: 'rollout.maxNewTokens', flag: 'max-new-tokens', type: { kind: 'int', min: 1 }, default: 2048, describe: 'Most tokens generated per response' },
  { path: 'rollout.batchSize', flag: 'rollout-batch', type: { kind: 'int', min: 1 }, default: 16, describe: 'Prompts per generate call' },
  { path: 'rollout.shardSize', flag: 'shard-size', type: { kind: 'int', min: 1 }, default: 64, describe: 'Prompts per rollout/judge shard (the unit a rerun resumes from)' },
  { path: 'lengths.maxPromptTokens', flag: 'max-prompt-tokens', type: { kind: 'int', min: 1 }, default: 512, describe: 'Longer prompts keep their last tokens' },
  { path: 'lengths.maxLength', flag: 'max-length', type: { kind: 'int', min: 2 }, default: 1024, describe: 'Prompt + response tokens in training; longer responses are cut' },
  { path: 'sppo.eta', flag: 'eta', type: { kind: 'number', min: 0, exclusiveMin: true }, default: 1000, describe: 'SPPO eta = 1/beta' },
  { path: 'sppo.loss', flag: 'loss', type: { kind: 'enum', values: ['sppo', 'sppo_single', 'sppo_hard', 'dpo', 'ipo'] }, default: 'sppo', describe: 'Loss' },
  { path: 'sppo.pairing', flag: 'pairing', type: { kind: 'enum', values: ['best-worst', 'all'] }, default: 'best-worst', describe: 'Training pairs: "best-worst" (reference) or "all" (Algorithm 1)' },
  { path: 'train.lr', flag: 'lr', type: { kind: 'number', min: 0, exclusiveMin: true }, default: 5e-7, describe: 'Peak learning rate' },
  { path: 'train.optimizer', flag: 'optimizer', type: { kind: 'enum', values: ['rmsprop', 'adamw'] }, default: 'rmsprop', describe: 'Optimizer' },
  { path: 'train.weightDecay', flag: 'weight-decay', type: { kind: 'number', min: 0 }, default: 0, describe: 'Weight decay: decoupled for AdamW (as torch.optim.AdamW); for RMSprop an L2 term added to the gradient (as torch.optim.RMSprop)' },
  { path: 'train.schedule', flag: 'schedule', type: { kind: 'enum', values: ['linear', 'cosine', 'constant'] }, default: 'linear', describe: 'Learning-rate schedule after warmup' },
  { path: 'train.warmupRatio', flag: 'warmup-ratio', type: { kind: 'number', min: 0, max: 1 }, default: 0.1, describe: 'Fraction of steps spent warming up' },
  { path: 'train.globalBatch', flag: 'global-batch', type: { kind: 'int', min: 1 }, default: 64, describe: 'Pairs per optimizer step' },
  { path: 'train.microBatch', flag: 'micro-batch', type: { kind: 'int', min: 1 }, default: 4, describe: 'Pairs per forward/backward (global batch must be a multiple)' },
  { path: 'train.maxGradNorm', flag: 'max-grad-norm', type: { kind: 'number', min: 0 }, default: 1.0, describe: 'Gradient clipping norm (0 = off)' },
  { path: 'train.epochs', flag: 'epochs', type: { kind: 'int', min: 1 }, default: 1, describe: 'Epochs per iteration (a checkpoint each)' },
  { path: 'train.selectedEpoch', flag: 'selected-epoch', type: { kind: 'int', min: 1 }, default: 1, describe: 'The epoch whose checkpoint becomes the next policy' },
  { path: 'train.resumeEvery', flag: 'resume-every', type: { kind: 'int', min: 1 }, default: 50, describe: 'Save a resume state every this many steps' },
  { path: 'train.saveDtype', flag: 'save-dtype', type: { kind: 'enum', values: ['float32', 'bfloat16'] }, default: 'float32', describe: 'Checkpoint dtype' },
  { path: 'eval.prompts', flag: 'eval-prompts', type: { kind: 'int', min: 0 }, default: 0, describe: 'After each iteration, judge this many prompts of pi_t+1 against pi_0 (0 = off)' },
  { path: 'eval.samples', flag: 'eval-samples', type: { kind: 'int', min: 1 }, default: 1, describe: 'Samples per eval prompt' },
];

export const fieldByPath = new Map(recipeFields.map((f) => [f.path, f]));

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
  return r as unknown as Recipe;
}
