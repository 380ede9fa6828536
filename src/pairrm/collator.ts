// llm-blender's CrossCompareCollator for one prompt at a time (batch size 1, as the reference
// ranks), then the ordered pairs. A segment is [CLS] <prefix> text [SEP] with every literal [SEP]
// in the text replaced by a space, cut to its limit in tokens (specials included) as the
// tokenizer's right truncation does:
//   source:     <|source|> x,       at most sourceMax tokens (1224)
//   candidates: <|candidate|> y_k,  at most candidateMax + floor((sourceMax - |source|) / 2) (412 + ...)
// The pair (i, j) is source ++ candidate_i ++ candidate_j with the <|candidate|> slot of the first
// rewritten to <|candidate1|> and of the second to <|candidate2|>; the three slot positions go to
// the model, which reads its hidden states there. Each prompt's limits depend on that prompt only,
// so a pair's tokens never depend on what else is judged with it (llm-blender's batches of
// several prompts would share the longest source's budget).
// Two deliberate differences from llm-blender, both on texts that contain the slot tokens
// themselves: only the slot is rewritten (llm-blender rewrites every <|candidate|>), and the
// model reads the slot positions (llm-blender's torch.where finds several and fails).
import type { PairRmSlotIds } from './config.js';
import { SLOT_TEXT, type PairRmTokenizer } from './tokenizer.js';

export interface CollatorLimits {
  sourceMax: number;
  candidateMax: number;
}

/** llm-blender's PairRM ranker config (source_maxlength, candidate_maxlength). */
export const REFERENCE_LIMITS: CollatorLimits = { sourceMax: 1224, candidateMax: 412 };

export function checkLimits(l: CollatorLimits, what: string): void {
  for (const [k, v] of Object.entries(l)) {
    if (!Number.isSafeInteger(v) || v < 3) throw new Error(`${what}: ${k} must be an integer >= 3 (got ${v})`);
  }
}

/** One prompt's segments: the source and each candidate, as [CLS] <prefix> ... [SEP]. */
export interface PromptSegments {
  source: number[];
  candidates: number[][];
}

export interface PairSequence {
  tokens: number[];
  /** Positions of <|source|>, <|candidate1|>, <|candidate2|>. */
  slots: [number, number, number];
}

/** `text` with every occurrence of `sep` replaced by a space (llm-blender's str.replace). */
export function scrubSeparator(text: string, sep: string): string {
  return text.split(sep).join(' ');
}

function segment(tok: PairRmTokenizer, prefix: string, prefixId: number, text: string, max: number): number[] {
  const content = tok.encode(scrubSeparator(prefix + text, tok.sepToken));
  if (content[0] !== prefixId) {
    throw new Error(`the PairRM tokenizer did not keep '${prefix}' as one token at the start of a segment (got ids ${content.slice(0, 3).join(', ')})`);
  }
  return [tok.clsId, ...content.slice(0, max - 2), tok.ids.sep];
}

export function collatePrompt(tok: PairRmTokenizer, limits: CollatorLimits, source: string, candidates: readonly string[]): PromptSegments {
  const src = segment(tok, SLOT_TEXT.source, tok.ids.source, source, limits.sourceMax);
  const candMax = limits.candidateMax + Math.floor((limits.sourceMax - src.length) / 2);
  return { source: src, candidates: candidates.map((c) => segment(tok, SLOT_TEXT.candidate, tok.ids.candidate, c, candMax)) };
}

/** The ordered pair (candidate i first, candidate j second) of one prompt. */
export function pairSequence(p: PromptSegments, i: number, j: number, ids: PairRmSlotIds): PairSequence {
  const a = [...p.candidates[i]!];
  const b = [...p.candidates[j]!];
  a[1] = ids.candidate1;
  b[1] = ids.candidate2;
  const s = p.source.length;
  return { tokens: [...p.source, ...a, ...b], slots: [1, s + 1, s + a.length + 1] };
}

/** Tokens of pair (i, j) without building it. */
export function pairLength(p: PromptSegments, i: number, j: number): number {
  return p.source.length + p.candidates[i]!.length + p.candidates[j]!.length;
}
