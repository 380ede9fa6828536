// The training stage of one iteration: epochs of optimizer steps over the preference pairs
// (micro-batch x accumulation = global batch), the LR schedule, metrics.jsonl per step, a
// checkpoint per epoch, and resume states so that a rerun continues at the last saved step and
// ends with the same weights as an uninterrupted run.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LossType, ModelHandle, OptimizerOptions, PreferencePair, StepMetrics, TrainerHandle } from '../model/types.js';
import type { Recipe } from '../recipe/types.js';
import { resolveAtomicDir, writeDirAtomic, writeFileAtomic } from '../run/atomic.js';
import { seededPermutation } from '../util/rng.js';
import { learningRate, warmupSteps } from './schedule.js';
import { noEvents, type EventSink } from '../util/events.js';
import { fsError } from '../util/fsErrors.js';
import { alone, contiguousPart, type DistSession } from '../dist/session.js';

/** A non-finite loss or gradient norm: training stops before the step; a rerun resumes. */
export class NanLossError extends Error {}

export interface TrainPlan {
  pairs: number;
  stepsPerEpoch: number;
  totalSteps: number;
  warmup: number;
  accumulation: number;
}

export function planTraining(pairs: number, t: Recipe['train']): TrainPlan {
  const stepsPerEpoch = Math.ceil(pairs / t.globalBatch);
  const totalSteps = stepsPerEpoch * t.epochs;
  return { pairs, stepsPerEpoch, totalSteps, warmup: warmupSteps(totalSteps, t.warmupRatio), accumulation: t.globalBatch / t.microBatch };
}

/** Seed of the pair order of one epoch: a fixed mix of run seed, iteration and epoch. */
export function epochSeed(seed: number, iteration: number, epoch: number): number {
  return (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(iteration, 0x85ebca6b) ^ Math.imul(epoch, 0xc2b2ae35)) >>> 0;
}

export function optimizerOptions(t: Recipe['train']): OptimizerOptions {
  return t.optimizer === 'adamw' ? { kind: 'adamw', weightDecay: t.weightDecay } : { kind: 'rmsprop', weightDecay: t.weightDecay };
}

export function checkpointDir(iterDir: string, epoch: number): string {
  return join(iterDir, `checkpoint-epoch-${epoch}`);
}

interface ResumeState {
  step: number; // optimizer steps completed in this iteration
}

export interface TrainStage {
  iteration: number;
  dir: string;                          // the iteration folder
  recipe: Recipe;
  pairs: PreferencePair[];
  /** The policy pi_t (fresh), used when no resume state exists. */
  loadPolicy: () => Promise<ModelHandle>;
  loadFolder: (folder: string) => Promise<ModelHandle>;
  tokenizerFrom: string;
  onEvent?: EventSink;
  /**
   * Data parallel: every rank runs the stage; each takes its contiguous part of every global
   * batch, its gradients are summed with the others' in the step, and rank 0 writes the metrics,
   * checkpoints and resume states (default: a world of one).
   */
  dist?: DistSession;
}

export interface TrainResult {
  model: ModelHandle;
  plan: TrainPlan;
  stepsRun: number;
  resumedFrom: number;
}

function weighted(acc: Record<string, number>, m: StepMetrics, w: number): void {
  acc.loss = (acc.loss ?? 0) + w * m.loss;
  acc.rc = (acc.rc ?? 0) + w * m.rewardsChosen;
  acc.rr = (acc.rr ?? 0) + w * m.rewardsRejected;
  acc.mg = (acc.mg ?? 0) + w * m.margins;
  acc.acc = (acc.acc ?? 0) + w * m.accuracy;
  acc.lc = (acc.lc ?? 0) + w * m.policyChosenLogp;
  acc.lr = (acc.lr ?? 0) + w * m.policyRejectedLogp;
  acc.tokens = (acc.tokens ?? 0) + m.tokens;
}

function truncateMetrics(file: string, keepSteps: number): void {
  if (!existsSync(file)) return;
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  const kept = lines.filter((l) => {
    try {
      return (JSON.parse(l) as { step: number }).step <= keepSteps;
    } catch {
      return false; // a torn last line
    }
  });
  writeFileAtomic(file, kept.map((l) => `${l}\n`).join(''));
}

export async function runTraining(s: TrainStage): Promise<TrainResult> {
  const onEvent = s.onEvent ?? noEvents;
  const t = s.recipe.train;
  const plan = planTraining(s.pairs.length, t);
  if (plan.pairs === 0) throw new Error(`iteration ${s.iteration}: no training pairs`);
  const opt = optimizerOptions(t);
  const resumeDir = join(s.dir, 'resume');

  let model: ModelHandle;
  let start = 0;
  // A model loaded here (from a resume state) is ours to free when training fails; the pi_t
  // handle from loadPolicy belongs to the caller.
  let ownModel = false;
  const saved = resolveAtomicDir(resumeDir);
  if (saved) {
    const state = JSON.parse(readFileSync(join(saved, 'state.json'), 'utf8')) as ResumeState;
    model = await s.loadFolder(join(saved, 'model'));
    ownModel = true;
    start = state.step;
    onEvent({ type: 'log', message: `iteration ${s.iteration}: resuming training at step ${start + 1} of ${plan.totalSteps}` });
  } else {
    model = await s.loadPolicy();
  }
  let trainer: TrainerHandle | undefined;
  try {
    const dist = s.dist ?? alone();
    trainer = await model.createTrainer({
      optimizer: opt,
      ...(t.gradientCheckpointing === 'on' ? { gradientCheckpointing: true } : {}),
      ...(t.gradientDtype === 'bf16' ? { gradientDtype: 'bf16' as const } : {}),
      ...(dist.communicator ? { communicator: dist.communicator, zero1: dist.options.zero1 } : {}),
    });
    if (saved) await trainer.loadState(join(saved, 'optimizer.safetensors'));
    return await trainSteps(s, model, trainer, plan, start);
  } catch (err) {
    if (ownModel) model.free();
    throw err;
  } finally {
    trainer?.free();
  }
}

/** A rank's part of one step, summed over ranks in rank order: weighted metrics, and the first non-finite loss. */
interface StepPart {
  acc: Record<string, number>;
  badLoss: { loss: number; pairs: number[] } | null;
}

async function trainSteps(s: TrainStage, model: ModelHandle, trainer: TrainerHandle, plan: TrainPlan, start: number): Promise<TrainResult> {
  const onEvent = s.onEvent ?? noEvents;
  const dist = s.dist ?? alone();
  const t = s.recipe.train;
  const loss: LossType = s.recipe.sppo.loss;
  const beta = 1 / s.recipe.sppo.eta;
  const resumeDir = join(s.dir, 'resume');
  const metricsFile = join(s.dir, 'metrics.jsonl');
  if (dist.isMain) truncateMetrics(metricsFile, start);

  let lastSaved = start;
  const saveResume = async (step: number): Promise<void> => {
    if (dist.isMain) {
      await writeDirAtomic(resumeDir, async (tmp) => {
        await model.save(join(tmp, 'model'), { dtype: 'float32' });
        await trainer.saveState(join(tmp, 'optimizer.safetensors'));
        writeFileAtomic(join(tmp, 'state.json'), JSON.stringify({ step } satisfies ResumeState));
      });
    } else {
      await trainer.saveState(null); // ZeRO-1: this rank's state goes into rank 0's file
    }
    lastSaved = step;
    await dist.barrier(`iteration ${s.iteration} resume state at step ${step}`);
  };

  const progress = (done: number): void => onEvent({ type: 'progress', iteration: s.iteration, stage: 'train', done, total: plan.totalSteps, unit: 'steps' });
  progress(start);
  let stepsRun = 0;
  for (let epoch = 1; epoch <= t.epochs; epoch++) {
    const firstStep = (epoch - 1) * plan.stepsPerEpoch;
    if (firstStep + plan.stepsPerEpoch <= start) continue;
    const order = seededPermutation(plan.pairs, epochSeed(s.recipe.seed, s.iteration, epoch));
    for (let i = 0; i < plan.stepsPerEpoch; i++) {
      const step = firstStep + i; // 0-based
      if (step < start) continue;
      const began = Date.now();
      const batch = order.slice(i * t.globalBatch, (i + 1) * t.globalBatch);
      // This rank's contiguous part of the global batch, in micro-batches; each micro-batch's
      // weight is its share of the GLOBAL batch, so the summed gradients are the global mean.
      const [lo, hi] = contiguousPart(batch.length, dist.rank, dist.worldSize);
      const part: StepPart = { acc: {}, badLoss: null };
      trainer.zeroGrad();
      for (let m = lo; m < hi; m += t.microBatch) {
        const micro = batch.slice(m, Math.min(hi, m + t.microBatch));
        const w = micro.length / batch.length;
        const last = m + t.microBatch >= hi;
        const metrics = await trainer.accumulate(micro.map((j) => s.pairs[j]!), loss, beta, w, last);
        if (!Number.isFinite(metrics.loss) && !part.badLoss) part.badLoss = { loss: metrics.loss, pairs: micro };
        weighted(part.acc, metrics, w);
      }
      const parts = await dist.gather(`iteration ${s.iteration} step ${step + 1} metrics`, part);
      const acc: Record<string, number> = {};
      for (const p of parts) for (const [k, v] of Object.entries(p.acc)) acc[k] = (acc[k] ?? 0) + v;
      const bad = parts.find((p) => p.badLoss)?.badLoss;
      if (bad) {
        trainer.zeroGrad();
        throw new NanLossError(
          `iteration ${s.iteration}, step ${step + 1}: the loss is ${bad.loss} (pairs ${bad.pairs.join(', ')}); ` +
            `training stopped before the optimizer step. Finished work is kept in ${s.dir}; lower the learning rate ` +
            `(--lr, now ${t.lr}) or check the judge's probabilities, then rerun the same command to resume at step ${lastSaved + 1}`,
        );
      }
      const lr = learningRate(t.schedule, t.lr, step, plan.totalSteps, plan.warmup);
      const { gradNorm, stepped } = await trainer.step(lr, t.maxGradNorm);
      if (!stepped) {
        // The engine skipped the step (non-finite gradient norm, the same on every rank): stop
        // before any metrics line or resume state records it, so the rerun redoes this step from
        // the last saved state.
        trainer.zeroGrad();
        throw new NanLossError(
          `iteration ${s.iteration}, step ${step + 1}: the gradient norm is ${gradNorm} (loss ${acc.loss}); ` +
            `training stopped before the optimizer step. Finished work is kept in ${s.dir}; lower the learning rate ` +
            `(--lr, now ${t.lr}) or check the judge's probabilities, then rerun the same command to resume at step ${lastSaved + 1}`,
        );
      }
      const secs = Math.max(1e-9, (Date.now() - began) / 1000);
      const line = {
        iteration: s.iteration,
        step: step + 1,
        epoch: epoch - 1 + (i + 1) / plan.stepsPerEpoch,
        loss: acc.loss!,
        'rewards/chosen': acc.rc!,
        'rewards/rejected': acc.rr!,
        'rewards/margins': acc.mg!,
        'rewards/accuracies': acc.acc!,
        'logps/chosen': acc.lc!,
        'logps/rejected': acc.lr!,
        lr,
        grad_norm: gradNorm,
        tokens: acc.tokens!,
        'tokens/s': acc.tokens! / secs,
      };
      if (dist.isMain) {
        try {
          appendFileSync(metricsFile, `${JSON.stringify(line)}\n`);
        } catch (err) {
          throw fsError(err, 'write', metricsFile);
        }
      }
      onEvent({ type: 'step', iteration: s.iteration, totalSteps: plan.totalSteps, beta, metrics: line });
      stepsRun++;
      progress(step + 1);
      const epochEnd = i === plan.stepsPerEpoch - 1;
      if (epochEnd) {
        if (dist.isMain) await writeDirAtomic(checkpointDir(s.dir, epoch), (tmp) => model.save(tmp, { tokenizerFrom: s.tokenizerFrom, dtype: t.saveDtype }));
        await dist.barrier(`iteration ${s.iteration} checkpoint of epoch ${epoch}`);
      }
      if (epochEnd || (step + 1) % t.resumeEvery === 0) await saveResume(step + 1);
    }
  }
  return { model, plan, stepsRun, resumedFrom: start };
}
