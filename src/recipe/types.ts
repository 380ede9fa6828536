// The recipe: every setting of an SPPO run. Defaults are the reference recipe (DESIGN.md).
import type { LossType } from '../model/types.js';

export type Pairing = 'best-worst' | 'all';
export type OptimizerKind = 'rmsprop' | 'adamw';
export type ScheduleKind = 'linear' | 'cosine' | 'constant';
export type PromptSplit = 'disjoint' | 'reuse';

export interface Recipe {
  /** Base model: a Hugging Face folder, or `demo` for the bundled tiny model. */
  model: string;
  /** One prompt file (split into `iterations` disjoint parts) or one file per iteration. */
  prompts: string[];
  promptColumn: string;
  /** Dataset folders: the split to read (null: the only split, or `train` when there are several). */
  promptSplitName: string | null;
  /** `disjoint`: each iteration gets its own seeded part of the prompts; `reuse`: all of them each time. */
  promptSplit: PromptSplit;
  /** Cap on prompts per iteration (0 = all). */
  maxPrompts: number;
  judge: string;
  /** Run folder. */
  output: string;
  device: 'cpu' | 'cuda';
  /** A Jinja chat template file, for model folders without one. */
  chatTemplate: string | null;
  seed: number;
  iterations: number;
  rollout: {
    k: number;
    temperature: number;
    topP: number;
    maxNewTokens: number;
    /** Prompts per generate call. */
    batchSize: number;
    /** Prompts per rollout/judge shard (the unit of resume). */
    shardSize: number;
  };
  lengths: {
    /** Prompts longer than this keep their last tokens. */
    maxPromptTokens: number;
    /** Prompt + response; responses are cut to fit when training. */
    maxLength: number;
  };
  sppo: {
    /** eta = 1/beta. */
    eta: number;
    loss: LossType;
    pairing: Pairing;
  };
  train: {
    lr: number;
    optimizer: OptimizerKind;
    weightDecay: number;
    schedule: ScheduleKind;
    warmupRatio: number;
    globalBatch: number;
    microBatch: number;
    maxGradNorm: number;
    epochs: number;
    selectedEpoch: number;
    /** Save a resume state every this many optimizer steps (and at each epoch end). */
    resumeEvery: number;
    /** Save checkpoints as float32 or bfloat16. */
    saveDtype: 'float32' | 'bfloat16';
  };
  eval: {
    /** After each iteration, sample this many prompts from pi_{t+1} and pi_0 and judge them (0 = off). */
    prompts: number;
    samples: number;
  };
}
