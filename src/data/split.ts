// Prompts per iteration: given files one per iteration, or one set split into disjoint seeded
// parts (as the reference's three UltraFeedback splits), or the whole set reused.
import { seededPermutation } from '../util/rng.js';

/**
 * Splits `prompts` into `parts` disjoint parts of near-equal size after a seeded shuffle; the
 * first `n mod parts` parts get one extra prompt. Every prompt lands in exactly one part.
 */
export function splitDisjoint(prompts: readonly string[], parts: number, seed: number): string[][] {
  if (!Number.isInteger(parts) || parts < 1) throw new Error(`parts must be a positive integer (got ${parts})`);
  if (prompts.length < parts) {
    throw new Error(`cannot split ${prompts.length} prompts into ${parts} disjoint non-empty parts (one per iteration); give more prompts or set promptSplit: reuse`);
  }
  const order = seededPermutation(prompts.length, seed);
  const base = Math.floor(prompts.length / parts);
  const extra = prompts.length % parts;
  const out: string[][] = [];
  let at = 0;
  for (let p = 0; p < parts; p++) {
    const n = base + (p < extra ? 1 : 0);
    out.push(order.slice(at, at + n).map((i) => prompts[i]!));
    at += n;
  }
  return out;
}
