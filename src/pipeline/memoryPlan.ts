// The memory a run needs, stage by stage, planned from the recipe and the models' config.json files
// alone (no weights read, no model allocated): the native planner (native/train/memory_plan.h)
// sizes each stage with the engine's own sizing code; this file picks the shapes the run will use
// and adds what stays resident from earlier stages (the policy is loaded once per iteration and
// keeps its decode workspace; an engine judge stays loaded for the whole run). `train --dry-run`
// prints it; a real run refuses, before loading anything, a stage that does not fit.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Recipe } from '../recipe/types.js';
import { native, type DeviceName, type NativeMemoryPlanRequest, type NativeStagePlan, type Precision } from '../native/addon.js';
import type { ModelPrecision } from '../model/engine.js';
import { parseModelConfig, readModelConfig, toNativeConfig, type ModelConfig } from '../model/config.js';
import { readPairRmConfig } from '../pairrm/config.js';
import { parseJudgeSpec } from '../judge/spec.js';
import { pairRmPrecision, parsePairRmOptions } from '../judge/pairrm.js';
import { contextWindow, newTokensFor, promptCut } from '../stages/contextWindow.js';
import { formatBytes } from '../util/bytes.js';
import { DEMO_DIR } from './demo.js';

export interface PlannedItem {
  name: string;
  bytes: number;
  detail: string;
}

export interface PlannedStage {
  /** rollout, judge, reference, training */
  stage: string;
  title: string;
  items: PlannedItem[];
  total: number;
}

export interface RunMemoryPlan {
  device: DeviceName;
  precision: Precision;
  policy: string;
  stages: PlannedStage[];
  /** Notes on what is not planned (a judge or rollout outside the engine). */
  notes: string[];
  /** The largest stage total: what the device must hold. */
  peak: number;
}

export interface PlanOptions {
  /** Data-parallel ranks (the optimizer state is sharded over them under ZeRO-1). */
  world?: number;
  zero1?: boolean;
  /** Folder a judge's relative path is resolved against (default the working folder), as the judge context's. */
  judgeCwd?: string;
  /**
   * The device's memory, when known: the automatic KV pool of the rollout is then planned as the
   * engine sizes it, at most half of what is free once the policy is loaded (planRollout).
   */
  available?: number;
}

/**
 * The recipe's numeric mode: fp32, or bf16 mixed precision (the GPU's fast mode; on the CPU the
 * engine emulates it: bf16 storage, fp32 arithmetic).
 */
export function recipePrecision(recipe: Recipe): ModelPrecision {
  const p: Precision = recipe.precision;
  if (p !== 'fp32' && p !== 'bf16') throw new Error(`precision must be fp32 or bf16 (got '${String(p)}')`);
  return p;
}

/** The policy's config as a run resolves it: the demo's model-config.json, or the model folder's. */
export function policyConfig(recipe: Recipe, cwd = process.cwd()): { config: ModelConfig; source: string } {
  if (recipe.model === 'demo') {
    const file = join(DEMO_DIR, 'model-config.json');
    return { config: parseModelConfig(JSON.parse(readFileSync(file, 'utf8')), file), source: 'demo (data/demo/model-config.json)' };
  }
  const folder = resolve(cwd, recipe.model);
  return { config: readModelConfig(folder).config, source: folder };
}

function stageOf(p: NativeStagePlan, stage: string, title: string, extra: PlannedItem[] = []): PlannedStage {
  const items = [...p.items, ...extra];
  return { stage, title, items, total: items.reduce((a, i) => a + i.bytes, 0) };
}

type GenerationRequest = Extract<NativeMemoryPlanRequest, { kind: 'generation' }>;

/** Blocks and block size of a generation plan's KV pool, and its item. */
function kvBlocks(p: NativeStagePlan): { item: PlannedItem; blocks: number; blockSize: number } {
  const item = p.items.find((i) => i.name === 'KV cache');
  if (!item || !p.kv) throw new Error(`memory plan: the generation plan has no KV pool (items: ${p.items.map((i) => i.name).join(', ')})`);
  return { item, blocks: p.kv.blocks, blockSize: p.kv.blockSize };
}

/**
 * The plan of one rollout call. An automatic KV pool (maxCacheTokens 0) holds what all the call's
 * prompts need, but the engine caps it at half the memory free when the call starts, and never
 * below what one prompt needs (native/model/scheduler.h resolve_budget); the native planner plans
 * the whole need. With `available` known, the pool is capped here the same way (free = available
 * less the policy's weights and `resident` bytes kept from earlier stages), so that a whole-shard
 * call is planned as it will run: fewer prompts at once rather than a pool that cannot be had.
 */
function planRollout(req: GenerationRequest, available: number | undefined, resident: number): NativeStagePlan {
  const addon = native();
  const whole = addon.planMemory(req);
  if (req.maxCacheTokens || available === undefined) return whole;
  const kv = kvBlocks(whole);
  const fixed = whole.items.filter((i) => i.name === 'weights' || i.name === 'rope table').reduce((a, i) => a + i.bytes, 0) + resident;
  // Bytes of one block: the pool is linear in its blocks (the block tables do not depend on them).
  const one = kvBlocks(addon.planMemory({ ...req, prompts: 1 }));
  const poolOf = (blocks: number): number => kvBlocks(addon.planMemory({ ...req, prompts: 1, maxCacheTokens: blocks * one.blockSize })).item.bytes;
  const perBlock = poolOf(one.blocks + 1) - poolOf(one.blocks);
  const fit = Math.floor(Math.max(0, available - fixed) / 2 / perBlock);
  if (fit >= kv.blocks) return whole;
  const blocks = Math.max(one.blocks, fit);
  const capped = addon.planMemory({ ...req, maxCacheTokens: blocks * kv.blockSize });
  return {
    ...capped,
    items: capped.items.map((i) => (i.name === 'KV cache'
      ? { ...i, detail: `${i.detail}; automatic pool capped at half the memory free after the weights (the call's whole need: ${kv.blocks} blocks)` }
      : i)),
  };
}

/**
 * Prompts of the rollout call the plan is made for. rollout.batchSize > 0: that many. 0: one call
 * spans all the prompts the stage samples (the engine source spans shards, stages/rollout.ts), a
 * number the plan does not read; it is planned at the fewest prompts whose samples fill the
 * running set (the automatic budgets as native/model/scheduler.h resolve_budget gives them), where
 * the decode buckets and the block tables stop growing. More prompts grow only the automatic KV
 * pool, up to half the memory free after the weights (planRollout).
 */
export function plannedRolloutPrompts(r: Recipe['rollout'], promptLen: number): number {
  if (r.batchSize > 0) return r.batchSize;
  const batchTokens = r.maxBatchTokens > 0 ? r.maxBatchTokens : Math.max(2048, promptLen, r.k);
  const running = r.maxRunningSequences > 0 ? r.maxRunningSequences : batchTokens;
  return Math.max(1, Math.ceil(running / r.k));
}

/** Plans every stage of `recipe` on its device. Throws naming the file or field of a bad config. */
export function planRunMemory(recipe: Recipe, o: PlanOptions = {}): RunMemoryPlan {
  const addon = native();
  const device = recipe.device;
  const precision = recipePrecision(recipe);
  const { config, source } = policyConfig(recipe);
  if (config.sequenceClassification) throw new Error(`${source}: the policy is a reward model (${config.architecture}); it cannot generate`);
  const cfg = toNativeConfig(config);
  const window = contextWindow(config.raw);
  const promptLen = promptCut(recipe.lengths.maxPromptTokens, window);
  // The longest generation: the longest prompt and as many new tokens as the shortest prompt allows.
  const maxNew = newTokensFor(recipe.rollout.maxNewTokens, 1, window);
  const seqLen = Math.min(recipe.lengths.maxLength, window ?? Infinity);
  const notes: string[] = [];

  // The judge, resident from its first use to the end of the run when it runs on the engine.
  let judge: PlannedStage | null = null;
  const spec = parseJudgeSpec(recipe.judge);
  const judgeLen = promptLen + maxNew;
  if (spec.kind === 'pairrm') {
    const pc = readPairRmConfig(resolve(o.judgeCwd ?? process.cwd(), spec.target));
    const pairs = Number(spec.options.batch ?? 16);
    const tokens = Math.max(Number(spec.options.tokens ?? 16384), 1);
    const p = addon.planMemory({ kind: 'pairrm', config: pc.native, precision: pairRmPrecision(parsePairRmOptions(spec), precision), tokens, sequences: pairs });
    judge = stageOf(p, 'judge', `judge (${recipe.judge})`);
  } else if (spec.kind === 'reward-model') {
    const rm = readModelConfig(resolve(o.judgeCwd ?? process.cwd(), spec.target)).config;
    const rows = Number(spec.options.batch ?? 16);
    const p = addon.planMemory({ kind: 'inference', config: toNativeConfig(rm), precision, rows, seqLen: judgeLen, head: 'scores' });
    judge = stageOf(p, 'judge', `judge (${recipe.judge}: ${rows} x ${judgeLen} per call)`);
  } else {
    notes.push(`judge ${recipe.judge} does not run on the engine: no device memory planned for it`);
  }
  const judgeResident: PlannedItem[] = judge ? [{ name: 'judge (kept loaded)', bytes: judge.total, detail: 'the judge stays loaded for the run' }] : [];

  const stages: PlannedStage[] = [];
  let decodeKept: PlannedItem[] = [];
  if (recipe.rollout.engine === 'native') {
    const gen = planRollout({
      kind: 'generation', config: cfg, precision, prompts: plannedRolloutPrompts(recipe.rollout, promptLen), samples: recipe.rollout.k,
      promptLen, maxNewTokens: maxNew, greedy: recipe.rollout.temperature === 0,
      maxBatchTokens: recipe.rollout.maxBatchTokens, maxRunningSequences: recipe.rollout.maxRunningSequences, maxCacheTokens: recipe.rollout.maxCacheTokens, maxSwapTokens: recipe.rollout.maxSwapTokens,
      // CUDA pads decode-only steps to buckets (CUDA graphs): their buffer and the KV scratch.
      decodeBuckets: device === 'cuda',
    }, o.available, recipe.iterations > 1 ? judge?.total ?? 0 : 0);
    if (recipe.rollout.batchSize === 0 && !recipe.rollout.maxCacheTokens) {
      // The plan's prompts are a stand-in for the stage's (plannedRolloutPrompts): say so.
      const prompts = plannedRolloutPrompts(recipe.rollout, promptLen);
      gen.items = gen.items.map((i) => {
        if (i.name !== 'KV cache') return i;
        const capped = i.detail.includes('capped at half the memory free');
        const spans = `a call spans all the prompts the stage samples, planned at ${prompts}, the fewest that fill the running set${capped ? '' : '; more prompts grow only this automatic pool, to at most half the memory free after the weights'}`;
        return { ...i, detail: `${i.detail}; ${spans}` };
      });
    }
    const decode = gen.items.find((i) => i.name === 'decode step');
    if (decode) decodeKept = [{ name: 'decode step (kept)', bytes: decode.bytes, detail: 'the policy keeps its rollout workspace' }];
    stages.push(stageOf(gen, 'rollout', 'rollout (policy + KV cache)', recipe.iterations > 1 ? judgeResident : []));
  } else {
    notes.push(`rollout.engine ${recipe.rollout.engine}: samples come from a server, no device memory planned for the rollout`);
  }
  if (judge) {
    const policyWeights = stages[0]?.items.filter((i) => i.name === 'weights' || i.name === 'rope table') ?? [];
    stages.push({ ...judge, items: [...judge.items, ...policyWeights.map((i) => ({ ...i, name: `policy ${i.name}` })), ...decodeKept],
      total: judge.total + [...policyWeights, ...decodeKept].reduce((a, i) => a + i.bytes, 0) });
  }
  const ref = addon.planMemory({ kind: 'inference', config: cfg, precision, rows: 2 * recipe.train.microBatch, seqLen, head: 'logprobs' });
  stages.push(stageOf(ref, 'reference', 'reference log-probs (the policy, no gradients)', [...decodeKept, ...judgeResident]));
  const train = addon.planMemory({
    kind: 'training', config: cfg, precision, pairs: recipe.train.microBatch, seqLen,
    checkpointing: recipe.train.gradientCheckpointing === 'on', optimizer: recipe.train.optimizer,
    world: o.world ?? 1, zero1: o.zero1 ?? false, gradientDtype: recipe.train.gradientDtype,
  });
  // A trainer frees the policy's decode workspace when it is made (native/train/trainer.h): not kept here.
  stages.push(stageOf(train, 'training', 'training (policy + gradients + optimizer + activations)', judgeResident));
  return { device, precision, policy: source, stages, notes, peak: Math.max(...stages.map((s) => s.total)) };
}

/** The plan as an aligned table, a stage after another, each with its total. */
export function formatMemoryPlan(plan: RunMemoryPlan): string {
  const lines: string[] = [];
  lines.push(`memory plan on ${plan.device} (${plan.precision}), policy ${plan.policy}:`);
  const name = Math.max(...plan.stages.flatMap((s) => s.items.map((i) => i.name.length)), 'total'.length);
  const size = Math.max(...plan.stages.flatMap((s) => [...s.items.map((i) => formatBytes(i.bytes).length), formatBytes(s.total).length]));
  for (const s of plan.stages) {
    lines.push('', `  ${s.title}`);
    for (const i of s.items) lines.push(`    ${i.name.padEnd(name)}  ${formatBytes(i.bytes).padStart(size)}  ${i.detail}`);
    lines.push(`    ${'total'.padEnd(name)}  ${formatBytes(s.total).padStart(size)}`);
  }
  for (const n of plan.notes) lines.push('', `  note: ${n}`);
  return lines.join('\n');
}

/** Null when every stage fits `available` bytes, else the refusal naming the stage and its figures. */
export function memoryRefusal(plan: RunMemoryPlan, available: number, where: string): string | null {
  const over = plan.stages.filter((s) => s.total > available);
  if (over.length === 0) return null;
  return over
    .map((s) => `the ${s.stage} stage needs ${formatBytes(s.total)} on ${where} (${s.items.map((i) => `${i.name} ${formatBytes(i.bytes)}`).join(', ')}) but ${formatBytes(available)} is available`)
    .join('; ');
}

/** What a new allocation can get on `device` now (host available memory on the CPU). */
export function availableMemory(device: DeviceName): number {
  return native().availableMemory(device);
}
