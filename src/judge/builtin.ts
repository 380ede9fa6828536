// Built-in synthetic judges: deterministic functions of the response TEXT, for the CPU demo and
// the tests. Each is documented by its scoring rule:
//
// builtin:length[?tau=1&unit=words|chars]
//   score = number of words (whitespace-separated) or characters; P_ij = sigma((s_i - s_j)/tau).
//
// builtin:demo[?words=w1,w2,...&tau=1&scale=10]
//   score = scale * (target words in the response) / max(1, words in the response), where a word
//   is a maximal run of letters/digits/apostrophes, compared case-insensitively; target words are
//   `words` (default DEMO_WORDS, a small class of colour words). A fraction, not a count, so that
//   length alone does not win; P_ij = sigma((s_i - s_j)/tau). A tiny model learns it by emitting
//   more of the class.
//
// builtin:cyclic[?kinds=rock,paper,scissors&p=0.9]
//   intransitive: a response's kind is the kind keyword (whole word, case-insensitive) that occurs
//   FIRST in it; none = no kind. Kinds are on a circle of n >= 3: kind a beats kind b with
//   probability p when (a - b) mod n is in 1..floor((n-1)/2), loses with 1 - p when it is in the
//   other half, and ties (0.5) at distance n/2 (even n) or with itself. So with the default kinds,
//   paper beats rock, scissors beat paper, rock beats scissors. A kinded response beats a kindless
//   one with probability p; two kindless ones tie. Pairwise: scores are null.
import type { Judge, JudgeInput, Judgment } from './types.js';
import { checkOptions, positiveOption, type JudgeSpec } from './spec.js';
import { validateBatch } from './input.js';
import { matrixFromScores } from './matrix.js';

export const DEMO_WORDS: readonly string[] = ['red', 'orange', 'yellow', 'green', 'blue', 'purple', 'pink', 'brown', 'black', 'white'];
export const BUILTIN_JUDGES = ['demo', 'length', 'cyclic'] as const;

const WORD = /[\p{L}\p{N}']+/gu;

export function words(text: string): string[] {
  return (text.toLowerCase().match(WORD) ?? []) as string[];
}

export function demoScore(text: string, targets: ReadonlySet<string> = new Set(DEMO_WORDS), scale = 10): number {
  const ws = words(text);
  let hits = 0;
  for (const w of ws) if (targets.has(w)) hits++;
  return (scale * hits) / Math.max(1, ws.length);
}

export function lengthScore(text: string, unit: 'words' | 'chars' = 'words'): number {
  if (unit === 'chars') return [...text].length;
  const t = text.trim();
  return t === '' ? 0 : t.split(/\s+/u).length;
}

/** Index of the kind whose keyword occurs first in `text` (whole word), or -1 for none. */
export function cyclicKind(text: string, kinds: readonly string[]): number {
  const set = new Map(kinds.map((k, i) => [k.toLowerCase(), i]));
  for (const w of words(text)) {
    const i = set.get(w);
    if (i !== undefined) return i;
  }
  return -1;
}

/** P(kind a beats kind b) under the cyclic rule above (a or b = -1 for kindless). */
export function cyclicProbability(a: number, b: number, n: number, p: number): number {
  if (a === b) return 0.5;
  if (b < 0) return p;
  if (a < 0) return 1 - p;
  const d = (((a - b) % n) + n) % n;
  if (2 * d === n) return 0.5;
  return 2 * d < n ? p : 1 - p;
}

class FunctionJudge implements Judge {
  constructor(
    readonly name: string,
    private readonly one: (input: JudgeInput) => Judgment,
  ) {}
  async judge(batch: JudgeInput[]): Promise<Judgment[]> {
    validateBatch(batch, this.name);
    return batch.map((x) => this.one(x));
  }
  async close(): Promise<void> {}
}

export function createBuiltinJudge(s: JudgeSpec): Judge {
  switch (s.target) {
    case 'length': {
      checkOptions(s, ['tau', 'unit']);
      const tau = positiveOption(s, 'tau', 1);
      const unit = s.options.unit ?? 'words';
      if (unit !== 'words' && unit !== 'chars') throw new Error(`judge spec '${s.spec}': unit must be words or chars (got '${unit}')`);
      return new FunctionJudge(s.spec, (x) => {
        const scores = x.responses.map((r) => lengthScore(r, unit));
        return { probability: matrixFromScores(scores, tau), scores };
      });
    }
    case 'demo': {
      checkOptions(s, ['words', 'tau', 'scale']);
      const tau = positiveOption(s, 'tau', 1);
      const scale = positiveOption(s, 'scale', 10);
      const list = s.options.words === undefined ? DEMO_WORDS : s.options.words.split(',').map((w) => w.trim().toLowerCase()).filter(Boolean);
      if (list.length === 0) throw new Error(`judge spec '${s.spec}': option words lists no words`);
      const targets = new Set(list);
      return new FunctionJudge(s.spec, (x) => {
        const scores = x.responses.map((r) => demoScore(r, targets, scale));
        return { probability: matrixFromScores(scores, tau), scores };
      });
    }
    case 'cyclic': {
      checkOptions(s, ['kinds', 'p']);
      const kinds = (s.options.kinds ?? 'rock,paper,scissors').split(',').map((k) => k.trim().toLowerCase()).filter(Boolean);
      if (kinds.length < 3 || new Set(kinds).size !== kinds.length) {
        throw new Error(`judge spec '${s.spec}': option kinds must list at least 3 distinct words (got '${s.options.kinds}')`);
      }
      const p = positiveOption(s, 'p', 0.9);
      if (p <= 0.5 || p > 1) throw new Error(`judge spec '${s.spec}': option p must be in (0.5, 1] (got ${p})`);
      return new FunctionJudge(s.spec, (x) => {
        const ks = x.responses.map((r) => cyclicKind(r, kinds));
        const probability = ks.map((a) => ks.map((b) => cyclicProbability(a, b, kinds.length, p)));
        return { probability, scores: null };
      });
    }
    default:
      throw new Error(`judge spec '${s.spec}': unknown built-in judge '${s.target}' (built-ins: ${BUILTIN_JUDGES.join(', ')})`);
  }
}
