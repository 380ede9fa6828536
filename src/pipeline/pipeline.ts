// The SPPO iteration driver. Every iteration's prompts are pinned (iter-t/prompts.jsonl,
// prompt-parts.json) before the first rollout. Each iteration t then runs, in iter-t/:
//   rollout/ shards -> generated.parquet -> judged/ shards ->
//   judged.parquet -> train.parquet -> ref_logprobs.parquet -> steps (metrics.jsonl, resume/) ->
//   checkpoint-epoch-E/ -> train.done.json (resume/ removed) -> eval.json (optional) -> summary.json.
// Every stage writes its output atomically before the next starts, so rerunning the same command
// resumes at the first unfinished stage, shard or step.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ModelHandle } from '../model/types.js';
import type { Judge } from '../judge/types.js';
import { createJudge, type JudgeContext } from '../judge/factory.js';
import { engineJudgeContext } from './judgeContext.js';
import { checkJudgeTarget } from './judgeCheck.js';
import type { Recipe } from '../recipe/types.js';
import { validateRecipe } from '../recipe/load.js';
import { acquireRunLock } from '../run/lock.js';
import { writeFileAtomic } from '../run/atomic.js';
import { recordedRecipe, recordRecipe } from '../run/recipeRecord.js';
import { getPath } from '../recipe/fields.js';
import { removeStaleTemps } from '../run/cleanup.js';
import { TextCodec } from '../text/codec.js';
import { readRollout, runRollout, rolloutColumns, shardCount, type RolloutRow } from '../stages/rollout.js';
import { writeParquet } from '../data/parquet.js';
import { runJudgeStage, readJudged } from '../stages/judge.js';
import { buildTrainRows, readTrainTable, writeTrainTable } from '../sppo/trainTable.js';
import { pairSequences, preferencePair } from '../stages/sequences.js';
import { computeRefLogprobs, readRefLogprobs, writeRefLogprobs } from '../stages/refLogprobs.js';
import { checkpointDir, runTraining } from '../stages/train.js';
import { compareSamples, sampleForEval, type EvalSampling } from '../eval/evaluate.js';
import { allPinnedPrompts, pinIterationPrompts, pinPrompts, pinnedPromptsOf, readPinnedPrompts } from './prompts.js';
import { checkDevice, nativeEngine, type ModelProvider } from './modelProvider.js';
import { ensureDemoModel } from './demo.js';
import { seededPermutation } from '../util/rng.js';
import { noEvents, type EventSink } from '../util/events.js';
import type { WinRate } from '../eval/stats.js';

export interface TrainOptions {
  provider?: ModelProvider;
  onEvent?: EventSink;
  /** Extra judge context (timeouts, stderr); the engine hooks are filled in. */
  judgeContext?: JudgeContext;
}

export interface IterationSummary {
  iteration: number;
  prompts: number;
  pairs: number;
  steps: number;
  meanLoss: number;
  finalLoss: number;
  meanRewardMargin: number;
  meanAccuracy: number;
  policy: string;              // the checkpoint that became pi_{t+1}
  winRate: WinRate | null;     // against pi_0 (eval.prompts > 0)
}

export interface RunResult {
  output: string;
  baseModel: string;
  finalModel: string;
  iterations: IterationSummary[];
}

const done = (file: string): boolean => existsSync(file);

function metricsSummary(file: string): { steps: number; meanLoss: number; finalLoss: number; margin: number; accuracy: number } {
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '') : [];
  const ms = lines.map((l) => JSON.parse(l) as Record<string, number>);
  const mean = (k: string): number => (ms.length ? ms.reduce((a, m) => a + (m[k] ?? 0), 0) / ms.length : NaN);
  return { steps: ms.length, meanLoss: mean('loss'), finalLoss: ms[ms.length - 1]?.loss ?? NaN, margin: mean('rewards/margins'), accuracy: mean('rewards/accuracies') };
}

export async function train(recipeIn: Recipe, opts: TrainOptions = {}): Promise<RunResult> {
  const recipe = validateRecipe(structuredClone(recipeIn));
  const provider = opts.provider ?? nativeEngine;
  const onEvent = opts.onEvent ?? noEvents;
  const out = resolve(recipe.output);
  mkdirSync(out, { recursive: true });
  const lock = acquireRunLock(out);
  let judge: Judge | undefined;
  try {
    const stale = removeStaleTemps(out);
    if (stale) onEvent({ type: 'log', message: `removed ${stale} temp file(s) left by an interrupted run in ${out}` });
    // Inputs are checked before the recipe is recorded, so that fixing a typo is not a "changed
    // recipe", and before any rollout, so that a bad device or judge does not waste one.
    await checkDevice(provider, recipe.device);
    const base = recipe.model === 'demo' ? await ensureDemoModel(join(out, 'base-model'), provider, recipe.device) : resolve(recipe.model);
    if (!existsSync(join(base, 'config.json'))) throw new Error(`model folder ${base} has no config.json`);
    const codec = TextCodec.load(base, { chatTemplateFile: recipe.chatTemplate });
    checkJudgeTarget(recipe.judge, opts.judgeContext?.cwd ?? process.cwd());
    // PairRM ranks the prompt under the policy's chat template, as the reference does.
    const ctx = engineJudgeContext(provider, recipe.device, { chatPrompt: (p) => codec.promptBeforeAnswer(p), ...opts.judgeContext });
    const getJudge = async (): Promise<Judge> => (judge ??= await createJudge(recipe.judge, ctx));

    // Until the first rollout shard exists nothing depends on the recipe: the prompts are re-read
    // and pinned before the recipe is recorded. Afterwards the recipe is checked first, so that
    // the pinned parts are only ever completed from the prompt settings the run started with.
    const started = existsSync(join(out, 'iter-1', 'rollout'));
    const oldIterations = getPath(recordedRecipe(out), 'iterations');
    const pin = (): Promise<void> =>
      pinIterationPrompts(out, recipe, onEvent, started, typeof oldIterations === 'number' ? oldIterations : recipe.iterations);
    if (!started) await pin();
    recordRecipe(out, recipe, onEvent, started, judgeUnused(out) ? ['judge'] : []);
    if (started) await pin();

    const summaries: IterationSummary[] = [];
    let policyFolder = base;
    for (let t = 1; t <= recipe.iterations; t++) {
      const s = await runIteration({ t, out, recipe, provider, onEvent, codec, base, policyFolder, getJudge });
      summaries.push(s);
      policyFolder = s.policy;
    }
    const result: RunResult = { output: out, baseModel: base, finalModel: policyFolder, iterations: summaries };
    writeFileAtomic(join(out, 'summary.json'), `${JSON.stringify(result, null, 2)}\n`);
    return result;
  } finally {
    if (judge) await judge.close();
    lock.release();
  }
}

interface IterationContext {
  t: number;
  out: string;
  recipe: Recipe;
  provider: ModelProvider;
  onEvent: EventSink;
  codec: TextCodec;
  base: string;
  policyFolder: string;
  getJudge: () => Promise<Judge>;
}

/**
 * Whether the judge may change: no shard of the current (first unfinished) iteration has been
 * judged, so nothing unfinished depends on it (a judge that failed is fixed and the run resumed).
 */
function judgeUnused(out: string): boolean {
  let t = 1;
  while (existsSync(join(out, `iter-${t}`, 'summary.json'))) t++;
  const dir = join(out, `iter-${t}`);
  const judged = join(dir, 'judged');
  const shards = existsSync(judged) ? readdirSync(judged).filter((n) => n.endsWith('.parquet') && !n.startsWith('.')) : [];
  return shards.length === 0 && !existsSync(join(dir, 'judged.parquet'));
}

async function runIteration(c: IterationContext): Promise<IterationSummary> {
  const { t, recipe, onEvent } = c;
  const dir = join(c.out, `iter-${t}`);
  const summaryFile = join(dir, 'summary.json');
  if (done(summaryFile)) {
    onEvent({ type: 'stage', iteration: t, stage: 'iteration', status: 'skipped', detail: 'already finished' });
    const s = JSON.parse(readFileSync(summaryFile, 'utf8')) as IterationSummary;
    onEvent({ type: 'iteration', iteration: t, summary: s as unknown as Record<string, unknown> });
    return s;
  }
  mkdirSync(dir, { recursive: true });
  const prompts = pinnedPromptsOf(c.out, t);
  let policy: ModelHandle | undefined;
  const getPolicy = async (): Promise<ModelHandle> => (policy ??= await c.provider.load(c.policyFolder, recipe.device));
  const stage = async (name: string, output: string, run: () => Promise<void>): Promise<void> => {
    if (done(output)) {
      onEvent({ type: 'stage', iteration: t, stage: name, status: 'skipped', detail: 'already done' });
      return;
    }
    onEvent({ type: 'stage', iteration: t, stage: name, status: 'start' });
    await run();
    onEvent({ type: 'stage', iteration: t, stage: name, status: 'done' });
  };
  let trained: ModelHandle | undefined;
  try {
    const generated = join(dir, 'generated.parquet');
    const shards = shardCount(prompts.length, recipe.rollout.shardSize);
    await stage('rollout', generated, async () => {
      await runRollout({
        model: getPolicy,
        codec: c.codec,
        prompts,
        dir,
        output: generated,
        iteration: t,
        onEvent,
        opts: { ...recipe.rollout, maxPromptTokens: recipe.lengths.maxPromptTokens, seed: recipe.seed },
      });
    });
    const judged = join(dir, 'judged.parquet');
    await stage('judge', judged, () => runJudgeStage({ judge: c.getJudge, dir, shards, output: judged, iteration: t, batch: 16, onEvent }));
    const trainFile = join(dir, 'train.parquet');
    await stage('pairs', trainFile, async () => writeTrainTable(trainFile, buildTrainRows(await readJudged(judged), recipe.sppo.pairing)));

    const rows = await readTrainTable(trainFile);
    const rollout = new Map<number, RolloutRow>((await readRollout(generated)).rows.map((r) => [r.promptIndex, r]));
    const seqs = pairSequences(rows, rollout, recipe.lengths.maxLength);
    const refFile = join(dir, 'ref_logprobs.parquet');
    await stage('reference', refFile, async () => writeRefLogprobs(refFile, await computeRefLogprobs(await getPolicy(), seqs, recipe.train.microBatch)));
    const ref = (await readRefLogprobs(refFile, rows.length))!;
    const pairs = rows.map((r, i) => preferencePair(r, seqs[i]!, ref.chosen[i]!, ref.rejected[i]!));

    const trainDone = join(dir, 'train.done.json');
    await stage('train', trainDone, async () => {
      const result = await runTraining({
        iteration: t,
        dir,
        recipe,
        pairs,
        loadPolicy: getPolicy,
        loadFolder: (f) => c.provider.load(f, recipe.device),
        tokenizerFrom: c.base,
        onEvent,
      });
      trained = result.model;
      // Training either continued the pi_t handle or loaded a resume state.
      if (policy && policy !== trained) policy.free();
      policy = undefined;
      writeFileAtomic(trainDone, `${JSON.stringify(result.plan)}\n`);
    });
    // The resume state (a full fp32 model and optimizer state) is needed only until train.done.json
    // exists; removed after it, so a crash in between leaves either the state or the done marker.
    if (done(trainDone)) for (const d of [join(dir, 'resume'), join(dir, 'resume.old')]) rmSync(d, { recursive: true, force: true });
    const next = checkpointDir(dir, recipe.train.selectedEpoch);

    let win: WinRate | null = null;
    if (recipe.eval.prompts > 0) {
      const evalFile = join(dir, 'eval.json');
      await stage('eval', evalFile, async () => {
        const { prompts: evalPrompts, baseRows, sampling } = await evalBase(c);
        const useTrained = trained && recipe.train.selectedEpoch === recipe.train.epochs;
        const model = useTrained ? trained! : await c.provider.load(next, recipe.device);
        let rowsA: RolloutRow[];
        try {
          rowsA = await sampleForEval(model, c.codec, evalPrompts, sampling);
        } finally {
          if (!useTrained) model.free();
        }
        writeParquet(join(dir, 'eval.parquet'), rolloutColumns(rowsA, recipe.eval.samples));
        const w = await compareSamples(await c.getJudge(), rowsA, baseRows);
        writeFileAtomic(evalFile, `${JSON.stringify(w, null, 2)}\n`);
      });
      win = JSON.parse(readFileSync(evalFile, 'utf8')) as WinRate;
      onEvent({ type: 'winrate', iteration: t, winRate: win.winRate, low: win.lower, high: win.upper, comparisons: win.n });
    }

    const m = metricsSummary(join(dir, 'metrics.jsonl'));
    const summary: IterationSummary = {
      iteration: t,
      prompts: prompts.length,
      pairs: rows.length,
      steps: m.steps,
      meanLoss: m.meanLoss,
      finalLoss: m.finalLoss,
      meanRewardMargin: m.margin,
      meanAccuracy: m.accuracy,
      policy: next,
      winRate: win,
    };
    writeFileAtomic(summaryFile, `${JSON.stringify(summary, null, 2)}\n`);
    onEvent({ type: 'iteration', iteration: t, summary: summary as unknown as Record<string, unknown> });
    return summary;
  } finally {
    policy?.free();
    trained?.free();
  }
}

interface EvalSettings {
  prompts: number;
  samples: number;
}

/**
 * The eval prompts (a seeded sample of eval.prompts prompts from all iterations' pinned prompts)
 * and pi_0's samples on them, pinned in eval/ with the settings they were made with
 * (eval/settings.json, written last). When eval.prompts or eval.samples changed on resume both are
 * recomputed; the seeds make the recomputed ones extend the old ones.
 */
async function evalBase(c: IterationContext): Promise<{ prompts: string[]; baseRows: RolloutRow[]; sampling: EvalSampling }> {
  const { recipe } = c;
  const dir = join(c.out, 'eval');
  const settingsFile = join(dir, 'settings.json');
  const baseFile = join(dir, 'base.parquet');
  const want: EvalSettings = { prompts: recipe.eval.prompts, samples: recipe.eval.samples };
  const had = existsSync(settingsFile) ? (JSON.parse(readFileSync(settingsFile, 'utf8')) as EvalSettings) : null;
  if (!had || had.prompts !== want.prompts || had.samples !== want.samples) {
    if (had) {
      c.onEvent({
        type: 'log',
        message: `eval settings changed (prompts ${had.prompts} -> ${want.prompts}, samples ${had.samples} -> ${want.samples}): recomputing the eval prompts and pi_0's samples in ${dir}`,
      });
    }
    rmSync(settingsFile, { force: true });
    rmSync(join(dir, 'prompts.jsonl'), { force: true });
    rmSync(baseFile, { force: true });
  }
  const sampling: EvalSampling = {
    samples: recipe.eval.samples,
    temperature: recipe.rollout.temperature,
    topP: recipe.rollout.topP,
    maxNewTokens: recipe.rollout.maxNewTokens,
    maxPromptTokens: recipe.lengths.maxPromptTokens,
    batchSize: recipe.rollout.batchSize,
    seed: recipe.seed,
  };
  let prompts = readPinnedPrompts(dir);
  if (!prompts) {
    const uniq = [...new Set(allPinnedPrompts(c.out).flat())];
    const order = seededPermutation(uniq.length, recipe.seed + 17);
    prompts = order.slice(0, Math.min(recipe.eval.prompts, uniq.length)).map((i) => uniq[i]!);
    pinPrompts(dir, prompts);
  }
  let baseRows: RolloutRow[];
  if (existsSync(baseFile)) {
    const read = await readRollout(baseFile);
    if (read.k !== sampling.samples || read.rows.length !== prompts.length) {
      throw new Error(`${baseFile} holds ${read.rows.length} prompts x ${read.k} samples, but ${settingsFile} says ${prompts.length} x ${sampling.samples}; delete ${dir} to recompute it`);
    }
    baseRows = read.rows;
  } else {
    const baseModel = await c.provider.load(c.base, recipe.device);
    try {
      baseRows = await sampleForEval(baseModel, c.codec, prompts, sampling);
    } finally {
      baseModel.free();
    }
    writeParquet(baseFile, rolloutColumns(baseRows, sampling.samples));
  }
  writeFileAtomic(settingsFile, `${JSON.stringify(want)}\n`);
  return { prompts, baseRows, sampling };
}
