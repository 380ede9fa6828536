// Packs variable-length token sequences into the padded [B, T] batches the core takes.
import type { NativeBatch } from '../native/addon.js';

export type PaddingSide = 'left' | 'right';

export interface BatchLimits {
  vocabSize: number;
  /** Longest sequence the model computes exactly (sliding window); null = unlimited. */
  maxLength: number | null;
}

function checkSequence(seq: readonly number[], i: number, what: string, limits: BatchLimits): void {
  if (!Array.isArray(seq) || seq.length === 0) throw new Error(`${what}[${i}] must be a non-empty array of token ids`);
  if (limits.maxLength !== null && seq.length > limits.maxLength) {
    throw new Error(
      `${what}[${i}] has ${seq.length} tokens, longer than the model's sliding window (${limits.maxLength}): ` +
        'sliding-window attention is not implemented, so longer sequences are refused',
    );
  }
  for (let t = 0; t < seq.length; t++) {
    const id = seq[t];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= limits.vocabSize) {
      throw new Error(`${what}[${i}][${t}] = ${String(id)} is not a token id in [0, ${limits.vocabSize})`);
    }
  }
}

/**
 * Pads `seqs` to the longest with token 0 (masked out). `promptLengths`, when given, marks
 * tokens[promptLength..] of each row as response tokens (the ones whose log-probs count).
 */
export function padBatch(
  seqs: readonly (readonly number[])[],
  limits: BatchLimits,
  opts: { side?: PaddingSide; promptLengths?: readonly number[]; what?: string } = {},
): NativeBatch {
  const what = opts.what ?? 'sequences';
  const side = opts.side ?? 'right';
  if (!Array.isArray(seqs) || seqs.length === 0) throw new Error(`${what} must be a non-empty array`);
  seqs.forEach((s, i) => checkSequence(s, i, what, limits));
  const B = seqs.length;
  const T = Math.max(...seqs.map((s) => s.length));
  const tokens = new Int32Array(B * T);
  const attentionMask = new Uint8Array(B * T);
  const responseMask = opts.promptLengths ? new Uint8Array(B * T) : undefined;
  for (let b = 0; b < B; b++) {
    const s = seqs[b]!;
    const start = side === 'right' ? 0 : T - s.length;
    for (let t = 0; t < s.length; t++) {
      tokens[b * T + start + t] = s[t]!;
      attentionMask[b * T + start + t] = 1;
    }
    if (responseMask && opts.promptLengths) {
      const p = opts.promptLengths[b];
      // The first token has nothing before it to predict it from, hence promptLength >= 1.
      if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > s.length) {
        throw new Error(`${what}[${b}].promptLength = ${String(p)} must be an integer in [1, ${s.length}]`);
      }
      for (let t = p; t < s.length; t++) responseMask[b * T + start + t] = 1;
    }
  }
  return responseMask ? { tokens, attentionMask, responseMask, B, T } : { tokens, attentionMask, B, T };
}

/** Row b of a [B, T, V] logits buffer without its padding, as [len, V]. */
export function unpadLogits(flat: Float32Array, batch: NativeBatch, V: number, b: number, side: PaddingSide): Float32Array {
  let len = 0;
  for (let t = 0; t < batch.T; t++) len += batch.attentionMask[b * batch.T + t]!;
  const start = side === 'right' ? 0 : batch.T - len;
  const from = (b * batch.T + start) * V;
  return flat.slice(from, from + len * V);
}
