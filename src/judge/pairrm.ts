// `pairrm:<folder>[?prompt=templated|plain&batch=16&tokens=16384&tau=1&source-max=1224&candidate-max=412&precision=fp16]`:
// llm-blender's PairRM (a DeBERTa-v3-large pairwise ranker, the paper's judge) run natively. For
// each prompt every ordered pair (i, j), i != j, is one sequence
//   [CLS]<|source|>x[SEP][CLS]<|candidate1|>y_i[SEP][CLS]<|candidate2|>y_j[SEP]
// (src/pairrm/collator.ts) whose logit M_ij says how much y_i beats y_j. The pairs of all prompts
// of a call are sorted by length and packed `batch` pairs (at most `tokens` tokens) per forward.
// Scores as Blender.rank(return_scores=True): s_i = mean_j (M_ij - M_ji); P_ij = sigma((s_i - s_j)/tau).
// prompt=templated (default) ranks the prompt under the policy's chat template, as the reference
// does (UCLA-AGI/SPPO scripts/rank.py); prompt=plain ranks the bare user turn. precision=fp32|bf16|
// fp16 sets the judge's own numeric mode (default: the run's); fp16 is how llm-blender runs PairRM
// on a GPU, and is offered for PairRM only (the policy trains in fp32 or bf16).
import type { DeviceName, PairRmPrecision } from '../native/addon.js';
import type { ModelPrecision } from '../model/engine.js';
import type { Judge } from './types.js';
import { checkOptions, positiveOption, type JudgeSpec } from './spec.js';
import { REFERENCE_LIMITS, checkLimits, type CollatorLimits } from '../pairrm/collator.js';
import type { BatchLimits } from '../pairrm/batching.js';
import { PairRmJudge } from '../pairrm/judge.js';

export interface PairRmContext {
  /** Device of the PairRM model (default cpu). */
  device: DeviceName;
  /** Its numeric mode (default fp32; bf16 as the run's, emulated on the CPU). */
  precision: ModelPrecision;
  /** The policy's chat template applied to one user turn, up to where the answer begins. */
  chatPrompt: (user: string) => string;
}

export const PAIRRM_OPTIONS = ['prompt', 'batch', 'tokens', 'tau', 'source-max', 'candidate-max', 'precision'] as const;
/** The modes the spec's precision option takes (fp64 stays a parity mode of the API). */
export const PAIRRM_SPEC_PRECISIONS = ['fp32', 'bf16', 'fp16'] as const;
export type PairRmSpecPrecision = (typeof PAIRRM_SPEC_PRECISIONS)[number];

function integerOption(s: JudgeSpec, key: string, fallback: number): number {
  const v = positiveOption(s, key, fallback);
  if (!Number.isInteger(v)) throw new Error(`judge spec '${s.spec}': option ${key} must be a positive integer (got ${v})`);
  return v;
}

export interface PairRmJudgeSettings {
  prompt: 'templated' | 'plain';
  /** The judge's numeric mode; absent: the run's (PairRmContext.precision). */
  precision?: PairRmSpecPrecision;
  tau: number;
  limits: BatchLimits;
  collate: CollatorLimits;
}

/** The spec's options, checked (an unknown option or a bad value names the spec). */
export function parsePairRmOptions(s: JudgeSpec): PairRmJudgeSettings {
  checkOptions(s, PAIRRM_OPTIONS);
  const prompt = s.options.prompt ?? 'templated';
  if (prompt !== 'templated' && prompt !== 'plain') {
    throw new Error(`judge spec '${s.spec}': option prompt must be templated or plain (got '${prompt}')`);
  }
  const collate = {
    sourceMax: integerOption(s, 'source-max', REFERENCE_LIMITS.sourceMax),
    candidateMax: integerOption(s, 'candidate-max', REFERENCE_LIMITS.candidateMax),
  };
  checkLimits(collate, `judge spec '${s.spec}'`);
  const precision = s.options.precision;
  if (precision !== undefined && !(PAIRRM_SPEC_PRECISIONS as readonly string[]).includes(precision)) {
    throw new Error(`judge spec '${s.spec}': option precision must be ${PAIRRM_SPEC_PRECISIONS.join(', ')} (got '${precision}')`);
  }
  return {
    prompt,
    ...(precision !== undefined ? { precision: precision as PairRmSpecPrecision } : {}),
    tau: positiveOption(s, 'tau', 1),
    limits: { maxPairs: integerOption(s, 'batch', 16), maxTokens: integerOption(s, 'tokens', 16384) },
    collate,
  };
}

/** The mode a PairRM judge runs in: the spec's precision option, else the run's, else fp32. */
export function pairRmPrecision(o: PairRmJudgeSettings, runPrecision: ModelPrecision | undefined): PairRmPrecision {
  return o.precision ?? runPrecision ?? 'fp32';
}

export async function createPairRmJudge(s: JudgeSpec, ctx: Partial<PairRmContext>, folder: string): Promise<Judge> {
  const o = parsePairRmOptions(s);
  const chatPrompt = ctx.chatPrompt;
  if (o.prompt === 'templated' && !chatPrompt) {
    throw new Error(
      `judge '${s.spec}': PairRM ranks the prompt under the policy's chat template (as the reference does), but no policy ` +
        "chat template is known here; give the policy model (`judge --chat-template-model <folder>`) or add '?prompt=plain'",
    );
  }
  // Loaded lazily: the model module pulls in the engine.
  const { loadPairRm } = await import('../pairrm/model.js');
  const model = await loadPairRm(folder, { device: ctx.device ?? 'cpu', precision: pairRmPrecision(o, ctx.precision) });
  const source = o.prompt === 'plain' || !chatPrompt ? (x: string): string => x : chatPrompt;
  return new PairRmJudge(s.spec, model, { tau: o.tau, limits: o.limits, collate: o.collate, source });
}
