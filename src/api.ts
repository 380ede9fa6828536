// The programmatic API: the same operations as the CLI (which is a thin layer over this file),
// each reporting progress through `onEvent`.
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Recipe } from './recipe/types.js';
import { resolveRecipe } from './recipe/resolve.js';
import { train, type RunResult, type TrainOptions } from './train/pipeline.js';
import { DEMO_RECIPE } from './train/demo.js';
import { nativeEngine, type ModelProvider } from './train/engine.js';
import { createJudge, type JudgeContext } from './judge/factory.js';
import type { Judge } from './judge/types.js';
import { TextCodec } from './text/codec.js';
import { loadPrompts } from './data/prompts.js';
import { runRollout, readRollout } from './rollout/rollout.js';
import { judgeRows, judgedColumns } from './train/judgeStage.js';
import { buildTrainRows, writeTrainTable } from './train/trainTable.js';
import { writeParquet } from './data/parquet.js';
import { compareSamples, sampleForEval } from './train/evaluate.js';
import { acquireRunLock } from './run/lock.js';
import { noEvents, type EventSink } from './util/events.js';
import type { WinRate } from './eval/stats.js';
import type { Pairing } from './sppo/pairs.js';

export { train, type RunResult, type TrainOptions, type IterationSummary } from './train/pipeline.js';
export type { Recipe } from './recipe/types.js';
export type { PipelineEvent, EventSink } from './util/events.js';
export type { ModelProvider } from './train/engine.js';
export { defaultRecipe } from './recipe/fields.js';
export { loadRecipeFile, applyOverrides, validateRecipe, recipeToYaml } from './recipe/load.js';
export { resolveRecipe } from './recipe/resolve.js';
export { loadPrompts, type PromptSet } from './data/prompts.js';
export { readParquet, writeParquet } from './data/parquet.js';
export { TextCodec } from './text/codec.js';

/** `sppo-native train`: the recipe from a file and flags (the demo recipe when no model is named). */
export async function trainFromSources(
  src: { recipeFile?: string; overrides: Record<string, unknown> },
  onEvent: EventSink = noEvents,
  opts: Omit<TrainOptions, 'onEvent'> = {},
): Promise<{ recipe: Recipe; demo: boolean; result: RunResult }> {
  const { recipe, demo } = resolveRecipe({ recipeFile: src.recipeFile, demoRecipeFile: DEMO_RECIPE, overrides: src.overrides });
  if (demo) onEvent({ type: 'log', message: `sppo-native demo: the demo recipe ${DEMO_RECIPE} (a tiny model on CPU, builtin:demo judge), run folder ${recipe.output}` });
  const result = await train(recipe, { ...opts, onEvent });
  return { recipe, demo, result };
}

/** The CLI's train: runs and prints where the result is. */
export async function trainCommandRun(src: { recipeFile?: string; overrides: Record<string, unknown> }, onEvent: EventSink): Promise<RunResult> {
  const started = Date.now();
  const { result } = await trainFromSources(src, onEvent);
  onEvent({ type: 'log', message: `finished in ${((Date.now() - started) / 1000).toFixed(1)}s; final policy ${result.finalModel}` });
  return result;
}

export interface GenerateRunOptions {
  model: string;
  prompts: string;
  promptColumn?: string;
  /** Output folder: generated.parquet (and resumable shards under rollout/). */
  output: string;
  k?: number;
  temperature?: number;
  topP?: number;
  maxNewTokens?: number;
  batchSize?: number;
  shardSize?: number;
  maxPromptTokens?: number;
  maxPrompts?: number;
  seed?: number;
  chatTemplate?: string | null;
  device?: 'cpu' | 'cuda';
  provider?: ModelProvider;
  onEvent?: EventSink;
}

/** Samples K responses per prompt and writes `output`/generated.parquet; returns its path. */
export async function generate(o: GenerateRunOptions): Promise<string> {
  const provider = o.provider ?? nativeEngine;
  const out = resolve(o.output);
  mkdirSync(out, { recursive: true });
  const lock = acquireRunLock(out);
  try {
    const set = await loadPrompts(o.prompts, o.promptColumn ?? 'prompt');
    const prompts = o.maxPrompts ? set.prompts.slice(0, o.maxPrompts) : set.prompts;
    const codec = TextCodec.load(o.model, { chatTemplateFile: o.chatTemplate ?? null });
    let model: Awaited<ReturnType<ModelProvider['load']>> | undefined;
    const file = join(out, 'generated.parquet');
    try {
      await runRollout({
        model: async () => (model ??= await provider.load(o.model, o.device ?? 'cpu')),
        codec,
        prompts,
        dir: out,
        output: file,
        iteration: 0,
        onEvent: o.onEvent,
        opts: {
          k: o.k ?? 5,
          temperature: o.temperature ?? 0.7,
          topP: o.topP ?? 0.9,
          maxNewTokens: o.maxNewTokens ?? 2048,
          batchSize: o.batchSize ?? 16,
          shardSize: o.shardSize ?? 64,
          maxPromptTokens: o.maxPromptTokens ?? 512,
          seed: o.seed ?? 42,
        },
      });
    } finally {
      model?.free();
    }
    return file;
  } finally {
    lock.release();
  }
}

export interface JudgeOptions {
  /** A generated.parquet (from `generate` or a run). */
  input: string;
  judge: string;
  /** Output folder: judged.parquet and train.parquet. */
  output: string;
  pairing?: Pairing;
  judgeContext?: JudgeContext;
}

/** Judges a generated table: writes judged.parquet (probability, rm_scores) and train.parquet. */
export async function judgeGenerated(o: JudgeOptions): Promise<{ judged: string; train: string }> {
  if (!existsSync(o.input)) throw new Error(`generated table ${o.input} does not exist`);
  const { rows } = await readRollout(o.input);
  const judge = await createJudge(o.judge, o.judgeContext ?? {});
  try {
    const judged = await judgeRows(judge, rows, 16);
    const out = resolve(o.output);
    const judgedFile = join(out, 'judged.parquet');
    const trainFile = join(out, 'train.parquet');
    writeParquet(judgedFile, judgedColumns(judged));
    writeTrainTable(trainFile, buildTrainRows(judged, o.pairing ?? 'best-worst'));
    return { judged: judgedFile, train: trainFile };
  } finally {
    await judge.close();
  }
}

export interface EvalOptions {
  modelA: string;
  modelB: string;
  prompts: string;
  promptColumn?: string;
  judge: string;
  maxPrompts?: number;
  samples?: number;
  temperature?: number;
  topP?: number;
  maxNewTokens?: number;
  maxPromptTokens?: number;
  batchSize?: number;
  seed?: number;
  chatTemplate?: string | null;
  device?: 'cpu' | 'cuda';
  provider?: ModelProvider;
  judgeContext?: JudgeContext;
}

/** Win rate of model A against model B under a judge, with a 95% Wilson interval. */
export async function evaluate(o: EvalOptions): Promise<WinRate> {
  const provider = o.provider ?? nativeEngine;
  const set = await loadPrompts(o.prompts, o.promptColumn ?? 'prompt');
  const prompts = o.maxPrompts ? set.prompts.slice(0, o.maxPrompts) : set.prompts;
  const sampling = {
    samples: o.samples ?? 1,
    temperature: o.temperature ?? 0.7,
    topP: o.topP ?? 0.9,
    maxNewTokens: o.maxNewTokens ?? 2048,
    maxPromptTokens: o.maxPromptTokens ?? 512,
    batchSize: o.batchSize ?? 16,
    seed: o.seed ?? 42,
  };
  const sample = async (folder: string) => {
    const codec = TextCodec.load(folder, { chatTemplateFile: o.chatTemplate ?? null });
    const m = await provider.load(folder, o.device ?? 'cpu');
    try {
      return await sampleForEval(m, codec, prompts, sampling);
    } finally {
      m.free();
    }
  };
  const a = await sample(o.modelA);
  const b = await sample(o.modelB);
  let judge: Judge | undefined;
  try {
    judge = await createJudge(o.judge, o.judgeContext ?? {});
    return await compareSamples(judge, a, b);
  } finally {
    await judge?.close();
  }
}

