// The SPPO loss family (sppo, sppo_single, sppo_hard) and the paper's baselines (dpo, ipo) on
// per-sequence log-probabilities, with gradients of the mean loss and the trainer metrics.
import { native, type DeviceName, type LossSummary, type NativeSppoLossArgs, type SppoLossResult } from '../native/addon.js';
import { checkDevice, checkFinite, checkLength, checkProbabilities, toFloat32, type FloatArray } from './validate.js';

import { LOSS_TYPES, type LossType } from '../native/kinds.js';

export { LOSS_TYPES, type LossType };

export function isLossType(v: unknown): v is LossType {
  return typeof v === 'string' && (LOSS_TYPES as readonly string[]).includes(v);
}

export interface SppoLossInput {
  /** [B] log pi_theta(y_w | x), summed over response tokens. */
  policyChosen: FloatArray;
  policyRejected: FloatArray;
  /** [B] log pi_ref(y | x), computed once per iteration. */
  refChosen: FloatArray;
  refRejected: FloatArray;
  /** [B] P(y_w > y_l): required by sppo_single. */
  chosenProbs?: FloatArray;
  /** [B] p_w = P(y_w > pi_t) and p_l: required by sppo. */
  chosenProbsWin?: FloatArray;
  chosenProbsLose?: FloatArray;
  /** beta = 1/eta (default 1e-3, i.e. eta = 1000). */
  beta?: number;
  lossType?: LossType;
  device?: DeviceName;
}

export type SppoLossSummary = LossSummary;
export type { SppoLossResult };

const REQUIRED_PROBS: Record<LossType, ('chosenProbs' | 'chosenProbsWin' | 'chosenProbsLose')[]> = {
  sppo: ['chosenProbsWin', 'chosenProbsLose'],
  sppo_single: ['chosenProbs'],
  sppo_hard: [],
  dpo: [],
  ipo: [],
};

export async function sppoLoss(input: SppoLossInput): Promise<SppoLossResult> {
  if (input === null || typeof input !== 'object') throw new TypeError('sppoLoss input must be an object');
  const lossType = input.lossType ?? 'sppo';
  if (!isLossType(lossType)) {
    throw new TypeError(`unknown loss type '${String(lossType)}' (expected ${LOSS_TYPES.join(', ')})`);
  }
  const beta = input.beta ?? 1e-3;
  if (typeof beta !== 'number' || !Number.isFinite(beta) || beta <= 0) {
    throw new RangeError(`beta must be finite and > 0 (got ${String(beta)})`);
  }
  const policyChosen = toFloat32('policyChosen', input.policyChosen);
  const B = policyChosen.length;
  if (B === 0) throw new RangeError('policyChosen is empty: the batch needs at least one pair');
  const cols: Record<string, Float32Array> = { policyChosen };
  for (const name of ['policyRejected', 'refChosen', 'refRejected'] as const) {
    cols[name] = toFloat32(name, input[name]);
  }
  for (const [name, arr] of Object.entries(cols)) {
    checkLength(name, arr, B, 'one value per pair, as policyChosen');
    checkFinite(name, arr);
  }
  for (const name of REQUIRED_PROBS[lossType]) {
    const v = input[name];
    if (v === undefined) throw new TypeError(`${name} is required by loss '${lossType}'`);
    const arr = toFloat32(name, v);
    checkLength(name, arr, B, 'one value per pair, as policyChosen');
    checkProbabilities(name, arr);
    cols[name] = arr;
  }
  const device = checkDevice(input.device);
  return native().sppoLoss({ ...cols, beta, lossType, device } as NativeSppoLossArgs);
}

