// `pairrm:<folder>[?prompt=templated|plain&batch=16&tokens=16384&tau=1&source-max=1224&candidate-max=412]`:
// llm-blender's PairRM (a DeBERTa-v3-large pairwise ranker, the paper's judge) run natively. For
// each prompt every ordered pair (i, j), i != j, is one sequence
//   [CLS]<|source|>x[SEP][CLS]<|candidate1|>y_i[SEP][CLS]<|candidate2|>y_j[SEP]
// (src/pairrm/collator.ts) whose logit M_ij says how much y_i beats y_j. The pairs of all prompts
// of a call are sorted by length and packed `batch` pairs (at most `tokens` tokens) per forward.
// Scores as Blender.rank(return_scores=True): s_i = mean_j (M_ij - M_ji); P_ij = sigma((s_i - s_j)/tau).
// prompt=templated (default) ranks the prompt under the policy's chat template, as the reference
// does (UCLA-AGI/SPPO scripts/rank.py); prompt=plain ranks the bare user turn.
import type { DeviceName } from '../native/addon.js';
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

export const PAIRRM_OPTIONS = ['prompt', 'batch', 'tokens', 'tau', 'source-max', 'candidate-max'] as const;

function integerOption(s: JudgeSpec, key: string, fallback: number): number {
  const v = positiveOption(s, key, fallback);
  if (!Number.isInteger(v)) throw new Error(`judge spec '${s.spec}': option ${key} must be a positive integer (got ${v})`);
  return v;
}

export interface PairRmJudgeSettings {
  prompt: 'templated' | 'plain';
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
  return {
    prompt,
    tau: positiveOption(s, 'tau', 1),
    limits: { maxPairs: integerOption(s, 'batch', 16), maxTokens: integerOption(s, 'tokens', 16384) },
    collate,
  };
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
  const model = await loadPairRm(folder, { device: ctx.device ?? 'cpu', precision: ctx.precision ?? 'fp32' });
  const source = o.prompt === 'plain' || !chatPrompt ? (x: string): string => x : chatPrompt;
  return new PairRmJudge(s.spec, model, { tau: o.tau, limits: o.limits, collate: o.collate, source });
}
