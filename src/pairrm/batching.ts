// Ordered pairs from many prompts cut into forward calls: longest first, at most `maxPairs` pairs
// and (unless one pair alone is longer) `maxTokens` tokens per call, so calls of similar lengths
// reuse the same planned activations and none outgrows its memory budget. Sequences are packed
// without padding (native/model/pairrm_model.h), so batching changes speed, never results.
import type { NativePairBatch } from '../native/addon.js';
import type { PairSequence } from './collator.js';

export interface BatchLimits {
  maxPairs: number;
  maxTokens: number;
}

/** Indices of `lengths` grouped into calls (each group in decreasing length). */
export function planBatches(lengths: readonly number[], limits: BatchLimits): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);
  const out: number[][] = [];
  let cur: number[] = [];
  let tokens = 0;
  for (const i of order) {
    const n = lengths[i]!;
    if (cur.length > 0 && (cur.length >= limits.maxPairs || tokens + n > limits.maxTokens)) {
      out.push(cur);
      cur = [];
      tokens = 0;
    }
    cur.push(i);
    tokens += n;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

export function packPairs(seqs: readonly PairSequence[]): NativePairBatch {
  const total = seqs.reduce((a, s) => a + s.tokens.length, 0);
  const tokens = new Int32Array(total);
  const lengths = new Int32Array(seqs.length);
  const slots = new Int32Array(3 * seqs.length);
  let at = 0;
  seqs.forEach((s, k) => {
    tokens.set(s.tokens, at);
    at += s.tokens.length;
    lengths[k] = s.tokens.length;
    slots.set(s.slots, 3 * k);
  });
  return { tokens, lengths, slots };
}
