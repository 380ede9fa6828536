// Log-probabilities of labels from logits [rows, vocab], forward and backward, on typed arrays.
// bf16 logits are a Uint16Array of raw bfloat16 bits (the top half of each float32).
import { native, type DeviceName } from '../native/addon.js';
import { checkCount, checkDevice, checkFinite, checkKind, checkLabels, checkLength, checkPositive } from './validate.js';

export type LogitsDType = 'f32' | 'bf16';
export type Logits = Float32Array | Uint16Array;

export const IGNORE_INDEX = -100;

export interface LogprobInput {
  /** [rows * vocab] row-major: Float32Array (f32) or Uint16Array of bf16 bits (bf16). */
  logits: Logits;
  rows: number;
  vocab: number;
  /** [rows] token ids in [0, vocab), or -100 to ignore the row. */
  labels: Int32Array;
  /** Default: 'f32' for a Float32Array, 'bf16' for a Uint16Array. */
  dtype?: LogitsDType;
  device?: DeviceName;
}

export interface LogprobForwardResult {
  /** [rows] log p(label); 0 for ignored rows. */
  tokenLogp: Float32Array;
  /** [rows] logsumexp of each row (pass it to backward to skip recomputing it). */
  lse: Float32Array;
}

export interface LogprobBackwardInput extends LogprobInput {
  /** [rows] d loss / d tokenLogp. */
  gradToken: Float32Array;
  /** [rows] from forward; recomputed when absent. */
  lse?: Float32Array;
  /** Overwrite `logits` with the gradient (no second logits-sized buffer). */
  inPlace?: boolean;
  /** Gradient element type; defaults to the logits dtype. */
  gradDtype?: LogitsDType;
}

interface CheckedLogits {
  logits: Logits;
  dtype: LogitsDType;
  rows: number;
  vocab: number;
  labels: Int32Array;
  device: DeviceName;
}

function checkLogprobInput(input: LogprobInput): CheckedLogits {
  if (input === null || typeof input !== 'object') throw new TypeError('logprob input must be an object');
  const rows = checkCount('rows', input.rows);
  const vocab = checkPositive('vocab', input.vocab);
  const { logits } = input;
  const dtype = input.dtype ?? (logits instanceof Uint16Array ? 'bf16' : 'f32');
  if (dtype !== 'f32' && dtype !== 'bf16') throw new TypeError(`dtype must be 'f32' or 'bf16' (got '${String(dtype)}')`);
  if (dtype === 'f32') checkKind('logits', logits, Float32Array, "Float32Array (dtype 'f32')");
  else checkKind('logits', logits, Uint16Array, "Uint16Array of bfloat16 bits (dtype 'bf16')");
  checkLength('logits', logits, rows * vocab, `rows * vocab = ${rows} * ${vocab}`);
  const labels = checkKind('labels', input.labels, Int32Array, 'Int32Array');
  checkLength('labels', labels, rows, 'one label per row');
  checkLabels('labels', labels, vocab);
  const device = checkDevice(input.device);
  // Finiteness of the logits is checked natively in the same pass that reads them (a JS scan
  // would double the work on the largest tensor); its error names logits[row, column].
  return { logits, dtype, rows, vocab, labels, device };
}

/** Per-row log p(label) and logsumexp. */
export async function logprobForward(input: LogprobInput): Promise<LogprobForwardResult> {
  const c = checkLogprobInput(input);
  return native().logprobForward(c);
}

/** d logits = gradToken * (onehot(label) - softmax(logits)); zero rows where ignored. */
export async function logprobBackward(input: LogprobBackwardInput): Promise<Logits> {
  const c = checkLogprobInput(input);
  const gradToken = checkKind('gradToken', input.gradToken, Float32Array, 'Float32Array');
  checkLength('gradToken', gradToken, c.rows, 'one gradient per row');
  for (let i = 0; i < c.rows; i++) {
    if (c.labels[i] !== IGNORE_INDEX && !Number.isFinite(gradToken[i])) {
      throw new RangeError(`gradToken[${i}] is not finite (${gradToken[i]})`);
    }
  }
  if (input.lse !== undefined) {
    checkKind('lse', input.lse, Float32Array, 'Float32Array');
    checkLength('lse', input.lse, c.rows, 'one logsumexp per row');
    checkFinite('lse', input.lse);
  }
  const gradDtype = input.gradDtype ?? c.dtype;
  if (gradDtype !== 'f32' && gradDtype !== 'bf16') {
    throw new TypeError(`gradDtype must be 'f32' or 'bf16' (got '${String(gradDtype)}')`);
  }
  const inPlace = input.inPlace === true;
  if (inPlace && gradDtype !== c.dtype) {
    throw new TypeError(`inPlace needs gradDtype equal to the logits dtype ('${c.dtype}'), got '${gradDtype}'`);
  }
  return native().logprobBackward({ ...c, gradToken, lse: input.lse, inPlace, gradDtype });
}

export interface MaskedSumInput {
  /** [batch * seqLen] per-token log-probabilities. */
  tokenLogp: Float32Array;
  /** [batch * seqLen] 1 where the token counts (response tokens), else 0. */
  mask: Uint8Array;
  batch: number;
  seqLen: number;
  device?: DeviceName;
}

/** seq[b] = sum_t mask[b, t] * tokenLogp[b, t]. */
export async function maskedSequenceSum(input: MaskedSumInput): Promise<Float32Array> {
  const batch = checkCount('batch', input.batch);
  const seqLen = checkCount('seqLen', input.seqLen);
  const tokenLogp = checkKind('tokenLogp', input.tokenLogp, Float32Array, 'Float32Array');
  const mask = checkKind('mask', input.mask, Uint8Array, 'Uint8Array');
  checkLength('tokenLogp', tokenLogp, batch * seqLen, `batch * seqLen = ${batch} * ${seqLen}`);
  checkLength('mask', mask, batch * seqLen, `batch * seqLen = ${batch} * ${seqLen}`);
  for (let i = 0; i < mask.length; i++) {
    const m = mask[i] as number;
    if (m > 1) throw new RangeError(`mask[${i}] = ${m} (must be 0 or 1)`);
    if (m === 1 && !Number.isFinite(tokenLogp[i])) throw new RangeError(`tokenLogp[${i}] is not finite (${tokenLogp[i]})`);
  }
  const device = checkDevice(input.device);
  return native().maskedSequenceSum({ tokenLogp, mask, batch, seqLen, device });
}
