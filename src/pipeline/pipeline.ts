// The SPPO iteration driver. Every iteration's prompts are pinned (iter-t/prompts.jsonl,
// prompt-parts.json) before the first rollout. Each iteration t then runs, in iter-t/:
//   rollout/ shards -> generated.parquet -> judged/ shards ->
//   judged.parquet -> train.parquet -> ref_logprobs.parquet -> steps (metrics.jsonl, resume/) ->
//   checkpoint-epoch-E/ -> train.done.json (resume/ removed) -> eval.json (optional) -> summary.json.
// Every stage writes its output atomically before the next starts, so rerunning the same command
// resumes at the first unfinished stage, shard or step. Under data parallelism (opts.dist) every
// rank runs this loop: the ranks meet at each stage's start and end, rollout, judging and the
// reference log-probs are split by shard, training by the global batch, and rank 0 alone writes
// the shared files (merged tables, train.parquet, metrics, checkpoints, records, summaries).
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { ModelHandle } from '../model/types.js';
import type { Judge } from '../judge/types.js';
import { createJudge, type JudgeContext } from '../judge/factory.js';
import { engineJudgeContext } from './judgeContext.js';
import { checkJudgeTarget } from './judgeCheck.js';
import type { Recipe } from '../recipe/types.js';
import { validateRecipe } from '../recipe/load.js';
import { acquireRunLock, type RunLock } from '../run/lock.js';
import { writeFileAtomic } from '../run/atomic.js';
import { checkRecipeChange, recordedRecipe, writeRecipeRecord } from '../run/recipeRecord.js';
import { getPath } from '../recipe/fields.js';
import { removeStaleTemps } from '../run/cleanup.js';
import { TextCodec } from '../text/codec.js';
import { readRollout, runRollout, rolloutColumns, type RolloutRow } from '../stages/rollout.js';
import { writeParquet } from '../data/parquet.js';
import { runJudgeStage, readJudged } from '../stages/judge.js';
import { buildTrainRows, readTrainTable, writeTrainTable } from '../sppo/trainTable.js';
import { identicalPairs, pairSequences, preferencePair } from '../stages/sequences.js';
import { readRefLogprobs, referenceShardPairs, runReferenceStage } from '../stages/refLogprobs.js';
import { checkpointDir, runTraining } from '../stages/train.js';
import { compareSamples, comparisonCount, sampleForEval, type EvalSampling } from '../eval/evaluate.js';
import { allPinnedPrompts, pinIterationPrompts, pinPrompts, pinnedPromptsOf, readPinnedPrompts } from './prompts.js';
import { checkDevice, nativeEngine, type ModelProvider } from './modelProvider.js';
import { ensureDemoModel } from './demo.js';
import { seededPermutation } from '../util/rng.js';
import { noEvents, progressTicker, teeEvents, type EventSink } from '../util/events.js';
import { LOG_FILE, openRunLog } from '../run/runLog.js';
import { prepareOutputFolder } from '../run/outputFolder.js';
import { pathInRun, recordedPath } from '../run/runPaths.js';
import { checkTokenizerFits } from '../text/vocabFit.js';
import { preflightJudge, trainingWarnings } from './preflight.js';
import { availableMemory, memoryRefusal, planRunMemory, recipePrecision } from './memoryPlan.js';
import { formatDuration } from '../util/progress.js';
import type { WinRate } from '../eval/stats.js';
import { openRunReports } from '../report/runReports.js';
import { checkRolloutEngine, openRolloutEngine } from './rolloutEngine.js';
import { alone, ownsShard, type DistSession } from '../dist/session.js';
import { judgeOwner } from './judgePlacement.js';

export interface TrainOptions {
  provider?: ModelProvider;
  onEvent?: EventSink;
  /** Extra judge context (timeouts, stderr); the engine hooks are filled in. */
  judgeContext?: JudgeContext;
  /** While waiting on the judge, a line every this many ms (default 30 s). */
  judgeWaitNoticeMs?: number;
  /** Data parallel: this rank's view of the run (src/dist/); default a world of one. */
  dist?: DistSession;
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
  /** Pairs whose chosen and rejected responses are the same tokens (they teach no preference). */
  identicalPairs: number;
  /** The checkpoint that became pi_{t+1} (absolute here; relative to the run folder in summary.json). */
  policy: string;
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
  const dist = opts.dist ?? alone();
  const out = resolve(recipe.output);
  let lock: RunLock = { release: () => {} };
  if (dist.isMain) {
    prepareOutputFolder(out, 'run');
    lock = acquireRunLock(out); // rank 0 holds the folder for the whole run
  }
  await dist.barrier('run folder');
  const log = openRunLog(out, 'train', undefined, dist.isMain ? LOG_FILE : `log.rank-${dist.rank}.txt`);
  // TensorBoard file and report page, fed by the run's events (src/report/), and the run's log.
  const reports = dist.isMain
    ? openRunReports(out, recipe, opts.onEvent ?? noEvents)
    : { onEvent: opts.onEvent ?? noEvents, settled: async () => {}, close: async () => {} };
  const onEvent = teeEvents(reports.onEvent, log.sink);
  const began = Date.now();
  let judge: Judge | undefined;
  let finished = false;
  try {
    if (dist.isMain) {
      const stale = removeStaleTemps(out);
      if (stale) onEvent({ type: 'log', message: `removed ${stale} temp file(s) left by an interrupted run in ${out}` });
    }
    if (dist.worldSize > 1) onEvent({ type: 'log', message: `data parallel: rank ${dist.rank} of ${dist.worldSize} (${dist.communicator?.kind ?? 'local'} communicator${dist.options.zero1 ? ', ZeRO-1' : ''})` });
    // Inputs are checked before the recipe is recorded, so that fixing a typo is not a "changed
    // recipe", and before any rollout, so that a bad device or judge does not waste one.
    const precision = recipePrecision(recipe);
    await checkDevice(provider, recipe.device, precision);
    if (precision === 'bf16' && recipe.device === 'cpu') {
      onEvent({ type: 'log', message: 'precision bf16 on the CPU is emulated (bf16 weights and activations, fp32 arithmetic): it checks what a GPU run computes, and runs slower than fp32' });
    }
    const demoFolder = join(out, 'base-model');
    const base = recipe.model !== 'demo' ? resolve(recipe.model) : dist.isMain ? await ensureDemoModel(demoFolder, provider, recipe.device) : demoFolder;
    await dist.barrier('base model');
    if (!existsSync(join(base, 'config.json'))) throw new Error(`model folder ${base} has no config.json`);
    // Every stage's memory, planned from the config files, against what the device has now:
    // refused before any model is loaded rather than found short after hours of rollout.
    if (provider === nativeEngine) {
      const judgeCwd = opts.judgeContext?.cwd ?? process.cwd();
      checkJudgeTarget(recipe.judge, judgeCwd); // its own message first, for a judge folder that is not there
      const available = availableMemory(recipe.device);
      const plan = planRunMemory(recipe, { world: dist.worldSize, zero1: dist.options.zero1, judgeCwd, available });
      const refusal = memoryRefusal(plan, available, recipe.device);
      if (refusal) throw new Error(`${refusal}. See the whole plan with: sppo-native train --dry-run (and the same flags)`);
    }
    const codec = TextCodec.load(base, { chatTemplateFile: recipe.chatTemplate });
    checkTokenizerFits(codec, base);
    checkJudgeTarget(recipe.judge, opts.judgeContext?.cwd ?? process.cwd());
    checkRolloutEngine(recipe);
    // PairRM ranks the prompt under the policy's chat template, as the reference does.
    const ctx = engineJudgeContext(provider, recipe.device, precision, {
      chatPrompt: (p) => codec.promptBeforeAnswer(p),
      ...opts.judgeContext,
      commandTimeoutMs: opts.judgeContext?.commandTimeoutMs ?? recipe.judgeTimeout * 1000,
      commandStartupTimeoutMs: opts.judgeContext?.commandStartupTimeoutMs ?? recipe.judgeStartupTimeout * 1000,
    });
    const getJudge = async (): Promise<Judge> => (judge ??= await createJudge(recipe.judge, ctx));

    // Until the first rollout shard exists nothing depends on the recipe: the prompts are re-read
    // and pinned before the recipe is recorded. Afterwards the recipe is checked first (writing
    // nothing), so that the pinned parts are only ever completed from the prompt settings the run
    // started with; it is recorded last, once every check passed and only when work will use it.
    // Rank 0 checks, pins and records; the other ranks read what it pinned.
    const todo = new Map<number, number>();
    if (dist.isMain) {
      const started = existsSync(join(out, 'iter-1', 'rollout'));
      const oldIterations = getPath(recordedRecipe(out), 'iterations');
      const changed = started ? checkRecipeChange(out, recipe, judgeUnused(out, recipe.iterations) ? ['judge'] : []) : [];
      await pinIterationPrompts(out, recipe, onEvent, started, typeof oldIterations === 'number' ? oldIterations : recipe.iterations);
      for (let t = 1; t <= recipe.iterations; t++) if (!done(join(out, `iter-${t}`, 'summary.json'))) todo.set(t, pinnedPromptsOf(out, t).length);
      if (todo.size > 0) {
        for (const w of trainingWarnings(recipe, todo)) onEvent({ type: 'warning', message: w });
        await preflightJudge(recipe.judge, ctx, onEvent, opts.judgeWaitNoticeMs);
        writeRecipeRecord(out, recipe, onEvent, changed);
      } else if (changed.length) {
        onEvent({ type: 'log', message: `run folder ${out} has finished its ${recipe.iterations} iteration(s): nothing to do; the changed setting(s) ${changed.join(', ')} were not used and are not recorded` });
      }
    }
    await dist.barrier('prompts pinned');
    if (!dist.isMain) for (let t = 1; t <= recipe.iterations; t++) if (!done(join(out, `iter-${t}`, 'summary.json'))) todo.set(t, pinnedPromptsOf(out, t).length);

    const summaries: IterationSummary[] = [];
    let policyFolder = base;
    for (let t = 1; t <= recipe.iterations; t++) {
      const s = await runIteration({
        t, out, recipe, provider, onEvent, codec, base, policyFolder, getJudge, dist,
        judgeWait: { hint: `it is stopped after ${ctx.commandTimeoutMs! / 1000} s of silence (--judge-timeout)`, everyMs: opts.judgeWaitNoticeMs },
      });
      summaries.push(s);
      policyFolder = s.policy;
    }
    const result: RunResult = { output: out, baseModel: base, finalModel: policyFolder, iterations: summaries };
    const record = {
      output: '.',
      baseModel: recordedPath(out, base),
      finalModel: recordedPath(out, policyFolder),
      iterations: summaries.map((x) => ({ ...x, policy: recordedPath(out, x.policy) })),
    };
    if (dist.isMain) writeFileAtomic(join(out, 'summary.json'), `${JSON.stringify(record, null, 2)}\n`);
    if (todo.size > 0 && dist.isMain) onEvent({ type: 'log', message: `run finished (${todo.size} iteration(s) run in ${formatDuration((Date.now() - began) / 1000)}); final policy ${policyFolder}` });
    finished = true;
    return result;
  } catch (err) {
    log.note(`failed: ${(err as Error).message}`);
    throw err;
  } finally {
    if (judge) await judge.close();
    await reports.close(finished ? 'finished' : 'stopped');
    log.close();
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
  /** The line printed while waiting on the judge: its hint, and how often (default 30 s). */
  judgeWait: { hint: string; everyMs?: number };
  dist: DistSession;
}

/**
 * Whether the judge may change: no shard of the current (first unfinished) iteration has been
 * judged, so nothing unfinished depends on it (a judge that failed is fixed and the run resumed).
 * A run with no unfinished iteration up to `iterations` would use no judge: it may not change.
 */
function judgeUnused(out: string, iterations: number): boolean {
  let t = 1;
  while (existsSync(join(out, `iter-${t}`, 'summary.json'))) t++;
  if (t > iterations) return false;
  const dir = join(out, `iter-${t}`);
  const judged = join(dir, 'judged');
  const shards = existsSync(judged) ? readdirSync(judged).filter((n) => n.endsWith('.parquet') && !n.startsWith('.')) : [];
  return shards.length === 0 && !existsSync(join(dir, 'judged.parquet'));
}

async function runIteration(c: IterationContext): Promise<IterationSummary> {
  const { t, recipe, onEvent, dist } = c;
  const main = dist.isMain;
  const shards = { rank: dist.rank, world: dist.worldSize };
  const dir = join(c.out, `iter-${t}`);
  const summaryFile = join(dir, 'summary.json');
  if (done(summaryFile)) {
    onEvent({ type: 'stage', iteration: t, stage: 'iteration', status: 'skipped', detail: 'already finished' });
    const recorded = JSON.parse(readFileSync(summaryFile, 'utf8')) as IterationSummary;
    const s: IterationSummary = { ...recorded, policy: policyOf(c.out, t, recorded.policy, recipe.train.selectedEpoch, onEvent) };
    onEvent({ type: 'iteration', iteration: t, summary: s as unknown as Record<string, unknown> });
    return s;
  }
  if (main) mkdirSync(dir, { recursive: true });
  await dist.barrier(`iteration ${t}`);
  const prompts = pinnedPromptsOf(c.out, t);
  let policy: ModelHandle | undefined;
  const getPolicy = async (): Promise<ModelHandle> => (policy ??= await c.provider.load(c.policyFolder, recipe.device, recipe.precision));
  // Every rank meets at a stage's start (so all decide alike whether it is done) and end (so all
  // see what rank 0 wrote).
  const stage = async (name: string, output: string, run: () => Promise<void>): Promise<void> => {
    await dist.barrier(`iteration ${t} ${name}`);
    if (done(output)) {
      onEvent({ type: 'stage', iteration: t, stage: name, status: 'skipped', detail: 'already done' });
    } else {
      onEvent({ type: 'stage', iteration: t, stage: name, status: 'start' });
      await run();
      onEvent({ type: 'stage', iteration: t, stage: name, status: 'done' });
    }
    await dist.barrier(`iteration ${t} ${name} written`);
  };
  let trained: ModelHandle | undefined;
  try {
    const generated = join(dir, 'generated.parquet');
    await stage('rollout', generated, async () => {
      // The native engine's shards spread over the ranks; a served policy (openai:) is rank 0's.
      const sharded = recipe.rollout.engine === 'native';
      if (!sharded && !main) return;
      const engine = openRolloutEngine({ recipe, iterDir: dir, policyFolder: c.policyFolder, baseModel: c.base, getPolicy, codec: c.codec, onEvent });
      const rollout = {
        source: engine.source,
        codec: c.codec,
        prompts,
        dir,
        output: generated,
        iteration: t,
        onEvent,
        opts: { ...recipe.rollout, maxPromptTokens: recipe.lengths.maxPromptTokens, seed: recipe.seed },
      };
      try {
        await runRollout({ ...rollout, ...(sharded ? { shards } : {}), merge: dist.worldSize === 1 || !sharded });
      } finally {
        await engine.close();
      }
      if (sharded && dist.worldSize > 1) {
        await dist.barrier(`iteration ${t} rollout shards`);
        if (main) await runRollout(rollout); // every shard is there: checks and merges them
      }
    });
    const judged = join(dir, 'judged.parquet');
    await stage('judge', judged, async () => {
      const judging = { judge: c.getJudge, dir, prompts: prompts.length, shardSize: recipe.rollout.shardSize, output: judged, iteration: t, batch: 16, onEvent, waitHint: c.judgeWait.hint, waitNoticeMs: c.judgeWait.everyMs };
      if (dist.worldSize === 1) return runJudgeStage(judging);
      await runJudgeStage({ ...judging, owns: judgeOwner(recipe.judge, dist), merge: false });
      await dist.barrier(`iteration ${t} judged shards`);
      if (main) await runJudgeStage({ ...judging, owns: () => false });
    });
    const trainFile = join(dir, 'train.parquet');
    await stage('pairs', trainFile, async () => {
      if (main) writeTrainTable(trainFile, buildTrainRows(await readJudged(judged), recipe.sppo.pairing));
    });

    const rows = await readTrainTable(trainFile);
    const rollout = new Map<number, RolloutRow>((await readRollout(generated)).rows.map((r) => [r.promptIndex, r]));
    const seqs = pairSequences(rows, rollout, recipe.lengths);
    const refFile = join(dir, 'ref_logprobs.parquet');
    await stage('reference', refFile, async () => {
      const per = referenceShardPairs(recipe.train.microBatch);
      const owns = (i: number): boolean => ownsShard(i, dist.rank, dist.worldSize);
      let mine = 0;
      for (let i = 0; i * per < seqs.length; i++) if (owns(i)) mine += Math.min(per, seqs.length - i * per);
      const tick = progressTicker(onEvent, { iteration: t, stage: 'reference', unit: 'pairs' }, mine);
      const reference = { model: getPolicy, seqs, batch: recipe.train.microBatch, dir, output: refFile, tick };
      await runReferenceStage({ ...reference, owns, merge: dist.worldSize === 1 });
      if (dist.worldSize > 1) {
        await dist.barrier(`iteration ${t} reference shards`);
        if (main) await runReferenceStage({ ...reference, owns: () => false });
      }
    });
    const ref = (await readRefLogprobs(refFile, rows.length))!;
    const pairs = rows.map((r, i) => preferencePair(r, seqs[i]!, ref.chosen[i]!, ref.rejected[i]!));
    const same = identicalPairs(rows, rollout);
    if (same > 0 && main && !done(join(dir, 'train.done.json'))) {
      onEvent({
        type: 'warning',
        message: `iteration ${t}: ${same} of ${rows.length} training pairs have chosen = rejected (identical responses): they teach no preference` +
          (same === rows.length ? ', so this iteration cannot move the policy towards what the judge prefers' : '') +
          (recipe.rollout.temperature === 0 ? ' (rollout.temperature is 0: the K samples are identical)' : ''),
      });
    }

    const trainDone = join(dir, 'train.done.json');
    await stage('train', trainDone, async () => {
      const result = await runTraining({
        iteration: t,
        dir,
        recipe,
        pairs,
        loadPolicy: getPolicy,
        loadFolder: (f) => c.provider.load(f, recipe.device, recipe.precision),
        tokenizerFrom: c.base,
        onEvent,
        dist,
      });
      trained = result.model;
      // Training either continued the pi_t handle or loaded a resume state.
      if (policy && policy !== trained) policy.free();
      policy = undefined;
      if (main) writeFileAtomic(trainDone, `${JSON.stringify(result.plan)}\n`);
    });
    // The resume state (a full fp32 model and optimizer state) is needed only until train.done.json
    // exists; removed after it, so a crash in between leaves either the state or the done marker.
    if (main && done(trainDone)) for (const d of [join(dir, 'resume'), join(dir, 'resume.old')]) rmSync(d, { recursive: true, force: true });
    const next = checkpointDir(dir, recipe.train.selectedEpoch);

    let win: WinRate | null = null;
    if (recipe.eval.prompts > 0) {
      const evalFile = join(dir, 'eval.json');
      await stage('eval', evalFile, async () => {
        if (!main) return; // rank 0 samples and judges the eval; the others wait at the stage's end
        const { prompts: evalPrompts, baseRows, sampling } = await evalBase(c);
        const useTrained = trained && recipe.train.selectedEpoch === recipe.train.epochs;
        const model = useTrained ? trained! : await c.provider.load(next, recipe.device, recipe.precision);
        let rowsA: RolloutRow[];
        try {
          const tick = progressTicker(onEvent, { iteration: t, stage: 'eval samples', unit: 'samples' }, evalPrompts.length * sampling.samples);
          rowsA = await sampleForEval(model, c.codec, evalPrompts, sampling, tick);
        } finally {
          if (!useTrained) model.free();
        }
        writeParquet(join(dir, 'eval.parquet'), rolloutColumns(rowsA, recipe.eval.samples));
        const evalJudge = await c.getJudge();
        const tick = progressTicker(onEvent, { iteration: t, stage: 'eval judge', unit: 'comparisons' }, comparisonCount(rowsA, baseRows));
        const w = await compareSamples(evalJudge, rowsA, baseRows, 64, tick);
        writeFileAtomic(evalFile, `${JSON.stringify(w, null, 2)}\n`);
      });
      win = JSON.parse(readFileSync(evalFile, 'utf8')) as WinRate;
      if (main) onEvent({ type: 'winrate', iteration: t, winRate: win.winRate, low: win.lower, high: win.upper, comparisons: win.n });
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
      identicalPairs: same,
      policy: next,
      winRate: win,
    };
    if (main) writeFileAtomic(summaryFile, `${JSON.stringify({ ...summary, policy: recordedPath(c.out, next) }, null, 2)}\n`);
    await dist.barrier(`iteration ${t} summary`);
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
    // The rollout's call size (a shard when batchSize is 0): the call the memory plan planned.
    batchSize: recipe.rollout.batchSize || recipe.rollout.shardSize,
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
    const baseModel = await c.provider.load(c.base, recipe.device, recipe.precision);
    try {
      const tick = progressTicker(c.onEvent, { iteration: c.t, stage: 'eval base samples', unit: 'samples' }, prompts.length * sampling.samples);
      baseRows = await sampleForEval(baseModel, c.codec, prompts, sampling, tick);
    } finally {
      baseModel.free();
    }
    writeParquet(baseFile, rolloutColumns(baseRows, sampling.samples));
  }
  writeFileAtomic(settingsFile, `${JSON.stringify(want)}\n`);
  return { prompts, baseRows, sampling };
}

/**
 * The policy a finished iteration's summary.json names, inside the run folder. Older records hold
 * absolute paths: one that names this iteration's checkpoint of another folder (the run was copied
 * or moved) is read as this folder's own; anything else outside the folder is refused.
 */
function policyOf(out: string, t: number, recorded: string, selectedEpoch: number, onEvent: EventSink): string {
  const own = `iter-${t}/checkpoint-epoch-${selectedEpoch}`;
  if (isAbsolute(recorded) && recorded.replace(/\\/g, '/').endsWith(`/${own}`) && !recorded.startsWith(`${out}/`)) {
    onEvent({ type: 'log', message: `iteration ${t}: summary.json names ${recorded} (an older record, from where the run folder was); using this folder's ${own}` });
    return join(out, own);
  }
  return pathInRun(out, recorded, `${join(out, `iter-${t}`, 'summary.json')}: policy`);
}
