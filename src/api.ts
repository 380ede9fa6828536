// The programmatic API: the same operations as the CLI (which is a thin layer over this file),
// each reporting progress through `onEvent`.
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Recipe } from './recipe/types.js';
import type { DeviceName } from './native/addon.js';
import type { ModelPrecision } from './model/engine.js';
import { resolveRecipe } from './recipe/resolve.js';
import { train, type RunResult, type TrainOptions } from './pipeline/pipeline.js';
import { DEMO_RECIPE } from './pipeline/demo.js';
import { checkDevice, nativeEngine, type ModelProvider } from './pipeline/modelProvider.js';
import { checkJudgeTarget } from './pipeline/judgeCheck.js';
import { planRunMemory, type PlanOptions, type RunMemoryPlan } from './pipeline/memoryPlan.js';
import { engineJudgeContext } from './pipeline/judgeContext.js';
import { defaultRecipe } from './recipe/fields.js';
import { recordOptions } from './run/optionsRecord.js';
import { createJudge, type JudgeContext } from './judge/factory.js';
import { TextCodec } from './text/codec.js';
import { loadPrompts, type InvalidUtf8 } from './data/prompts.js';
import { describeCalls, runRollout, readRollout, type RolloutOptions, type RolloutRow } from './stages/rollout.js';
import { engineSource } from './stages/responseSource.js';
import { judgeRows, judgedColumns } from './stages/judge.js';
import { buildTrainRows, writeTrainTable } from './sppo/trainTable.js';
import { writeParquet } from './data/parquet.js';
import { compareSamples, comparisonCount, sampleForEval, type EvalSampling } from './eval/evaluate.js';
import { acquireRunLock } from './run/lock.js';
import { noEvents, progressTicker, teeEvents, type EventSink } from './util/events.js';
import { formatDuration } from './util/progress.js';
import { openRunLog } from './run/runLog.js';
import { prepareOutputFolder } from './run/outputFolder.js';
import { checkTokenizerFits } from './text/vocabFit.js';
import { describeSet } from './pipeline/prompts.js';
import { contextWarning, contextWindow } from './stages/contextWindow.js';
import type { WinRate } from './eval/stats.js';
import type { Pairing } from './sppo/pairs.js';

export { train, type RunResult, type TrainOptions, type IterationSummary } from './pipeline/pipeline.js';
export type { Recipe } from './recipe/types.js';
export type { PipelineEvent, EventSink } from './util/events.js';
export type { ModelProvider } from './pipeline/modelProvider.js';
export { defaultRecipe } from './recipe/fields.js';
export { loadRecipeFile, applyOverrides, validateRecipe, recipeToYaml } from './recipe/load.js';
export { resolveRecipe } from './recipe/resolve.js';
export { loadPrompts, type PromptSet } from './data/prompts.js';
export { readParquet, writeParquet } from './data/parquet.js';
export { TextCodec } from './text/codec.js';
export { exportBenchmark, type ExportOptions } from './export/exportAnswers.js';
export { startServer, type ServeOptions, type RunningServer } from './serve/server.js';

/** `sppo-native train`: the recipe from a file and flags (the demo recipe when no model is named). */
export async function trainFromSources(
  src: { recipeFile?: string; overrides: Record<string, unknown> },
  onEvent: EventSink = noEvents,
  opts: Omit<TrainOptions, 'onEvent'> = {},
): Promise<{ recipe: Recipe; demo: boolean; result: RunResult }> {
  const { recipe, demo } = resolveRecipe({ recipeFile: src.recipeFile, demoRecipeFile: DEMO_RECIPE, overrides: src.overrides });
  if (demo) {
    onEvent({ type: 'log', message: `sppo-native demo: the demo recipe ${DEMO_RECIPE} (a tiny model on ${recipe.device}, judge ${recipe.judge}), run folder ${recipe.output}` });
  }
  const result = await train(recipe, { ...opts, onEvent });
  return { recipe, demo, result };
}

/**
 * `sppo-native train --dry-run`: the recipe resolved exactly as trainFromSources does and the memory
 * of each of its stages planned from the config files alone; reads no weights, allocates no model,
 * writes nothing.
 */
export function planTrainFromSources(
  src: { recipeFile?: string; overrides: Record<string, unknown> },
  opts: PlanOptions = {},
): { recipe: Recipe; demo: boolean; plan: RunMemoryPlan } {
  const { recipe, demo } = resolveRecipe({ recipeFile: src.recipeFile, demoRecipeFile: DEMO_RECIPE, overrides: src.overrides });
  return { recipe, demo, plan: planRunMemory(recipe, opts) };
}

/** The CLI's train: runs and prints where the result is. */
export async function trainCommandRun(src: { recipeFile?: string; overrides: Record<string, unknown> }, onEvent: EventSink): Promise<RunResult> {
  const { result } = await trainFromSources(src, onEvent);
  // Wall time since the process started (loading the addon and the model included), as a user's clock sees it.
  onEvent({ type: 'log', message: `finished in ${process.uptime().toFixed(1)}s; final policy ${result.finalModel}` });
  return result;
}

/** What `generate` and `evaluate` share: the prompts and how responses are sampled (unset: the default recipe's). */
export interface PromptSamplingOptions {
  prompts: string;
  promptColumn?: string;
  /** Dataset folders: the split to read (default: the only one, or `train`). */
  promptSplitName?: string | null;
  maxPrompts?: number;
  temperature?: number;
  topP?: number;
  maxNewTokens?: number;
  maxPromptTokens?: number;
  batchSize?: number;
  seed?: number;
  chatTemplate?: string | null;
  device?: 'cpu' | 'cuda';
  /** fp32 (default) or bf16 (the GPU's fast mode; emulated on the CPU). */
  precision?: ModelPrecision;
  provider?: ModelProvider;
  /** JSON/JSONL prompt bytes that are not UTF-8: refuse the file (default) or replace them, counted. */
  promptInvalidUtf8?: InvalidUtf8;
  onEvent?: EventSink;
}

export interface GenerateRunOptions extends PromptSamplingOptions {
  model: string;
  /** Output folder: generated.parquet (and resumable shards under rollout/). */
  output: string;
  k?: number;
  shardSize?: number;
  /** The engine's continuous-batching budgets (recipe rollout.maxBatchTokens, ...; 0 = automatic); they never change the samples. */
  maxBatchTokens?: number;
  maxRunningSequences?: number;
  maxCacheTokens?: number;
  /** Host positions for preempted prompts' KV blocks (recipe rollout.maxSwapTokens; -1 = automatic, 0 = none). */
  maxSwapTokens?: number;
}

/** The prompts of `o.prompts`, the first `o.maxPrompts` of them when set. */
async function promptsOf(o: PromptSamplingOptions, d: Recipe, onEvent: EventSink): Promise<string[]> {
  const set = await loadPrompts(o.prompts, o.promptColumn ?? d.promptColumn, { splitName: o.promptSplitName, invalidUtf8: o.promptInvalidUtf8 });
  onEvent({ type: 'log', message: describeSet(set) });
  return o.maxPrompts ? set.prompts.slice(0, o.maxPrompts) : set.prompts;
}

const TEMPERATURE_0 = 'rollout.temperature is 0: sampling is greedy, so the samples of a prompt are identical';

/**
 * Samples K responses per prompt and writes `output`/generated.parquet; returns its path. The
 * options that decide the samples are recorded in `output`/generate.json; a rerun resumes the
 * shards only with the same ones (batch size, batching budgets and device may change).
 */
export async function generate(o: GenerateRunOptions): Promise<string> {
  const provider = o.provider ?? nativeEngine;
  const d = defaultRecipe();
  const device = o.device ?? d.device;
  const precision = o.precision ?? d.precision;
  const out = resolve(o.output);
  const model = resolve(o.model);
  if (!existsSync(join(model, 'config.json'))) throw new Error(`model folder ${model} has no config.json`);
  prepareOutputFolder(out, 'generate');
  const lock = acquireRunLock(out);
  const log = openRunLog(out, 'generate');
  const onEvent = teeEvents(o.onEvent ?? noEvents, log.sink);
  try {
    await checkDevice(provider, device, precision);
    const rollout: RolloutOptions = {
      k: o.k ?? d.rollout.k,
      temperature: o.temperature ?? d.rollout.temperature,
      topP: o.topP ?? d.rollout.topP,
      maxNewTokens: o.maxNewTokens ?? d.rollout.maxNewTokens,
      batchSize: o.batchSize ?? d.rollout.batchSize,
      shardSize: o.shardSize ?? d.rollout.shardSize,
      maxPromptTokens: o.maxPromptTokens ?? d.lengths.maxPromptTokens,
      seed: o.seed ?? d.seed,
      maxBatchTokens: o.maxBatchTokens ?? d.rollout.maxBatchTokens,
      maxRunningSequences: o.maxRunningSequences ?? d.rollout.maxRunningSequences,
      maxCacheTokens: o.maxCacheTokens ?? d.rollout.maxCacheTokens,
      maxSwapTokens: o.maxSwapTokens ?? d.rollout.maxSwapTokens,
    };
    const chatTemplate = o.chatTemplate ? resolve(o.chatTemplate) : null;
    const codec = TextCodec.load(model, { chatTemplateFile: chatTemplate });
    checkTokenizerFits(codec, model);
    const prompts = await promptsOf(o, d, onEvent);
    if (rollout.temperature === 0 && rollout.k > 1) onEvent({ type: 'warning', message: `${TEMPERATURE_0}: the ${rollout.k} responses of each prompt will be the same` });
    const shardDir = join(out, 'rollout');
    const started = existsSync(shardDir) && readdirSync(shardDir).some((n) => n.endsWith('.parquet') && !n.startsWith('.'));
    // Batch size and the batching budgets change how the samples are computed, never what they are.
    const { batchSize: _b, maxBatchTokens: _t, maxRunningSequences: _r, maxCacheTokens: _c, maxSwapTokens: _s, ...decisive } = rollout;
    const record = join(out, 'generate.json');
    const options = {
      model, prompts: resolve(o.prompts), promptColumn: o.promptColumn ?? d.promptColumn, promptSplitName: o.promptSplitName ?? null, maxPrompts: o.maxPrompts ?? 0, chatTemplate,
      // Recorded only when it changes the prompts, so that older records still match.
      promptInvalidUtf8: o.promptInvalidUtf8 === 'replace' ? 'replace' : undefined,
      ...decisive,
    };
    recordOptions(record, options, started);
    onEvent({
      type: 'log',
      message: `generate: ${rollout.k} sample${rollout.k === 1 ? '' : 's'} for each of ${prompts.length} prompts (${describeCalls(rollout.batchSize)}, at most ${rollout.maxNewTokens} new tokens each) into ${out}`,
    });
    let handle: Awaited<ReturnType<ModelProvider['load']>> | undefined;
    const file = join(out, 'generated.parquet');
    try {
      await runRollout({
        source: async () => engineSource((handle ??= await provider.load(model, device, precision)), codec),
        codec,
        prompts,
        dir: out,
        output: file,
        iteration: 0,
        stageName: 'generate',
        onEvent,
        opts: rollout,
      });
    } finally {
      handle?.free();
    }
    if (!existsSync(record)) recordOptions(record, options, false); // an older folder, its shards checked
    log.note(`wrote ${file}`);
    return file;
  } catch (err) {
    log.note(`failed: ${(err as Error).message}`);
    throw err;
  } finally {
    log.close();
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
  /** A model folder whose chat template PairRM judges apply to the prompts (the policy's). */
  chatTemplateModel?: string;
  judgeContext?: JudgeContext;
  /** Command judges: seconds a request may wait with no output (default: the recipe default, 600). */
  judgeTimeout?: number;
  judgeStartupTimeout?: number;
  /** Where model judges (PairRM, reward models) run (default cpu), and in which precision (default fp32). */
  device?: DeviceName;
  precision?: ModelPrecision;
  onEvent?: EventSink;
}

/** The judge context with the timeouts of `o` (seconds) where `ctx` sets none. */
function withTimeouts(ctx: JudgeContext | undefined, o: { judgeTimeout?: number; judgeStartupTimeout?: number }): JudgeContext {
  const d = defaultRecipe();
  return {
    ...ctx,
    commandTimeoutMs: ctx?.commandTimeoutMs ?? (o.judgeTimeout ?? d.judgeTimeout) * 1000,
    commandStartupTimeoutMs: ctx?.commandStartupTimeoutMs ?? (o.judgeStartupTimeout ?? d.judgeStartupTimeout) * 1000,
  };
}

/** Judges a generated table: writes judged.parquet (probability, rm_scores) and train.parquet. */
export async function judgeGenerated(o: JudgeOptions): Promise<{ judged: string; train: string }> {
  const onEvent = o.onEvent ?? noEvents;
  if (!existsSync(o.input)) throw new Error(`generated table ${o.input} does not exist`);
  const codec = o.chatTemplateModel !== undefined ? TextCodec.load(resolve(o.chatTemplateModel)) : null;
  const { rows } = await readRollout(o.input);
  const chat: JudgeContext = codec ? { chatPrompt: (p) => codec.promptBeforeAnswer(p) } : {};
  const ctx = withTimeouts({ ...chat, ...o.judgeContext }, o);
  const judge = await createJudge(o.judge, engineJudgeContext(nativeEngine, o.device ?? 'cpu', o.precision ?? 'fp32', ctx));
  try {
    const judged = await judgeRows(judge, rows, 16, {
      tick: progressTicker(onEvent, { iteration: 0, stage: 'judge', unit: 'prompts' }, rows.length),
      waiting: (w) => onEvent({ type: 'log', message: `judge: waiting on judge '${w.judge}' for ${formatDuration(w.elapsedMs / 1000)} (prompts ${w.firstPrompt}..${w.lastPrompt}; it is stopped after ${ctx.commandTimeoutMs! / 1000} s of silence)` }),
    });
    const out = resolve(o.output);
    const judgedFile = join(out, 'judged.parquet');
    const trainFile = join(out, 'train.parquet');
    writeParquet(judgedFile, judgedColumns(judged));
    writeTrainTable(trainFile, buildTrainRows(judged, o.pairing ?? defaultRecipe().sppo.pairing));
    return { judged: judgedFile, train: trainFile };
  } finally {
    await judge.close();
  }
}

export interface EvalOptions extends PromptSamplingOptions {
  modelA: string;
  modelB: string;
  judge: string;
  samples?: number;
  judgeContext?: JudgeContext;
  judgeTimeout?: number;
  judgeStartupTimeout?: number;
}

/**
 * Win rate of model A against model B under a judge, with a 95% Wilson interval. Every input
 * (prompts, device, both models' folders and tokenizers, the judge) is checked, and the judge
 * started, before any sampling.
 */
export async function evaluate(o: EvalOptions): Promise<WinRate> {
  const provider = o.provider ?? nativeEngine;
  const d = defaultRecipe();
  const device = o.device ?? d.device;
  const precision = o.precision ?? d.precision;
  const onEvent = o.onEvent ?? noEvents;
  const prompts = await promptsOf(o, d, onEvent);
  const sampling: EvalSampling = {
    samples: o.samples ?? d.eval.samples,
    temperature: o.temperature ?? d.rollout.temperature,
    topP: o.topP ?? d.rollout.topP,
    maxNewTokens: o.maxNewTokens ?? d.rollout.maxNewTokens,
    maxPromptTokens: o.maxPromptTokens ?? d.lengths.maxPromptTokens,
    batchSize: o.batchSize ?? d.rollout.batchSize,
    seed: o.seed ?? d.seed,
  };
  const models = [o.modelA, o.modelB].map((m, i) => {
    const folder = resolve(m);
    const which = i === 0 ? 'model A' : 'model B';
    if (!existsSync(join(folder, 'config.json'))) throw new Error(`${which}: model folder ${folder} has no config.json`);
    try {
      const codec = TextCodec.load(folder, { chatTemplateFile: o.chatTemplate ?? null });
      checkTokenizerFits(codec, folder);
      return { folder, codec, which };
    } catch (err) {
      throw new Error(`${which}: ${(err as Error).message}`);
    }
  });
  await checkDevice(provider, device, precision);
  checkJudgeTarget(o.judge, o.judgeContext?.cwd ?? process.cwd());
  // PairRM ranks prompts under a policy's chat template: model A's.
  const chat: JudgeContext = { chatPrompt: (p) => models[0]!.codec.promptBeforeAnswer(p) };
  const judge = await createJudge(o.judge, engineJudgeContext(provider, device, precision, withTimeouts({ ...chat, ...o.judgeContext }, o)));
  try {
    const samples: RolloutRow[][] = [];
    for (const m of models) {
      const handle = await provider.load(m.folder, device, precision);
      try {
        const w = contextWarning(contextWindow(handle.config), sampling.maxPromptTokens, sampling.maxNewTokens, m.folder);
        if (w) onEvent({ type: 'warning', message: w });
        const tick = progressTicker(onEvent, { iteration: 0, stage: `${m.which} samples`, unit: 'samples' }, prompts.length * sampling.samples);
        samples.push(await sampleForEval(handle, m.codec, prompts, sampling, tick));
      } finally {
        handle.free();
      }
    }
    const tick = progressTicker(onEvent, { iteration: 0, stage: 'judge', unit: 'comparisons' }, comparisonCount(samples[0]!, samples[1]!));
    return await compareSamples(judge, samples[0]!, samples[1]!, 64, tick);
  } finally {
    await judge.close();
  }
}
