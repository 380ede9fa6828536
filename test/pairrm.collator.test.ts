// The PairRM collator (src/pairrm/collator.ts) on a tiny DeBERTa-style tokenizer: segments are
// [CLS] <prefix> text [SEP] cut to their limits as right truncation does, literal [SEP]s become
// spaces, only the slot token is rewritten per pair, limits depend on the prompt alone; then the
// batching of pairs by length, their packing, and llm-blender's max_logits aggregation.
import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collatePrompt, pairLength, pairSequence, REFERENCE_LIMITS, scrubSeparator } from '../src/pairrm/collator.js';
import { packPairs, planBatches } from '../src/pairrm/batching.js';
import { scoresFromComparisons } from '../src/pairrm/scores.js';
import { readPairRmConfig } from '../src/pairrm/config.js';
import { PairRmTokenizer } from '../src/pairrm/tokenizer.js';
import { TINY_IDS, writeTinyPairRm } from './helpers/pairrmFolder.js';
import { seededRandom } from './sppo.seed.js';

const root = mkdtempSync(join(tmpdir(), 'sppo-pairrm-collator-'));
const folder = writeTinyPairRm(join(root, 'pairrm')).folder;
const tok = PairRmTokenizer.load(folder, readPairRmConfig(folder).ids);
const { rand } = seededRandom('pairrm.collator');
const WORDS = ['the', 'red', 'cat', 'is', 'blue', 'sky', 'dog', 'hello', 'world', 'zebra', 'quiz', '42', 'yes!'];
const sentence = (n: number): string => Array.from({ length: n }, () => WORDS[Math.floor(rand() * WORDS.length)]).join(' ');

describe('PairRM segments', () => {
  it('are [CLS] <prefix> text [SEP], the text tokenized as the tokenizer does', () => {
    const text = sentence(5);
    const p = collatePrompt(tok, REFERENCE_LIMITS, text, ['a b', text]);
    expect(p.source).toEqual([TINY_IDS.cls, TINY_IDS.source, ...tok.encode(text), TINY_IDS.sep]);
    expect(p.candidates[0]).toEqual([TINY_IDS.cls, TINY_IDS.candidate, ...tok.encode('a b'), TINY_IDS.sep]);
    // The added token splits the text as in Python: <|source|>x and <|source|> x give the same ids.
    expect(tok.encode(`<|source|>${text}`)).toEqual([TINY_IDS.source, ...tok.encode(text)]);
  });

  it('cut the source to sourceMax and the candidates to candidateMax + half what the source left', () => {
    const limits = { sourceMax: 10, candidateMax: 6 };
    for (const n of [1, 2, 3, 20]) {
      const src = sentence(n);
      const cands = [sentence(1), sentence(30), sentence(4)];
      const p = collatePrompt(tok, limits, src, cands);
      const full = tok.encode(src);
      expect(p.source.length).toBe(Math.min(10, full.length + 3));
      expect(p.source.slice(2, -1)).toEqual(full.slice(0, p.source.length - 3));
      const candMax = 6 + Math.floor((10 - p.source.length) / 2);
      p.candidates.forEach((c, k) => {
        const ids = tok.encode(cands[k]!);
        expect(c.length).toBe(Math.min(candMax, ids.length + 3));
        expect(c.slice(2, -1)).toEqual(ids.slice(0, c.length - 3));
        expect(c[c.length - 1]).toBe(TINY_IDS.sep);
      });
    }
  });

  it('turn every literal [SEP] in a text into a space', () => {
    expect(scrubSeparator('a[SEP]b[SEP][SEP]c', '[SEP]')).toBe('a b  c');
    const p = collatePrompt(tok, REFERENCE_LIMITS, 'red[SEP]cat', ['[SEP]blue sky[SEP]', 'yes[SEP]no']);
    expect(p.source).toEqual(collatePrompt(tok, REFERENCE_LIMITS, 'red cat', []).source);
    expect(p.candidates[0]).toEqual(collatePrompt(tok, REFERENCE_LIMITS, '', [' blue sky ']).candidates[0]);
    for (const seg of [p.source, ...p.candidates]) expect(seg.filter((t) => t === TINY_IDS.sep)).toEqual([TINY_IDS.sep]);
    // Other specials in a text are tokens, as in Python.
    expect(tok.encode('a [CLS] b')).toContain(TINY_IDS.cls);
  });
});

describe('PairRM ordered pairs', () => {
  it('concatenate source, first and second candidate, rewriting only the two slot tokens', () => {
    const p = collatePrompt(tok, REFERENCE_LIMITS, 'the sky', ['red', 'blue <|candidate|> sky', 'dog']);
    for (const [i, j] of [[0, 1], [1, 0], [2, 1]] as const) {
      const s = pairSequence(p, i, j, tok.ids);
      const a = p.candidates[i]!, b = p.candidates[j]!;
      expect(s.tokens).toEqual([...p.source, TINY_IDS.cls, TINY_IDS.candidate1, ...a.slice(2), TINY_IDS.cls, TINY_IDS.candidate2, ...b.slice(2)]);
      expect(s.slots).toEqual([1, p.source.length + 1, p.source.length + a.length + 1]);
      expect(s.slots.map((x) => s.tokens[x])).toEqual([TINY_IDS.source, TINY_IDS.candidate1, TINY_IDS.candidate2]);
      expect(pairLength(p, i, j)).toBe(s.tokens.length);
    }
    // A literal <|candidate|> inside a text stays what it is.
    expect(pairSequence(p, 1, 0, tok.ids).tokens.filter((t) => t === TINY_IDS.candidate)).toHaveLength(1);
    expect(p.candidates[1]).toEqual(collatePrompt(tok, REFERENCE_LIMITS, 'the sky', ['blue <|candidate|> sky']).candidates[0]);
  });

  it("take the candidates' budget from their own prompt's source, whatever else is judged", () => {
    const limits = { sourceMax: 12, candidateMax: 5 };
    const long = sentence(40);
    const short = collatePrompt(tok, limits, 'red', [long]);
    const full = collatePrompt(tok, limits, sentence(30), [long]);
    expect(short.source.length).toBe(4);
    expect(short.candidates[0]!.length).toBe(5 + Math.floor((12 - 4) / 2));
    expect(full.source.length).toBe(12);
    expect(full.candidates[0]!.length).toBe(5);
  });
});

describe('PairRM batches', () => {
  it('group pairs longest first within the pair and token limits; a long pair goes alone', () => {
    const lengths = Array.from({ length: 40 }, () => 1 + Math.floor(rand() * 100));
    lengths.push(500);
    const groups = planBatches(lengths, { maxPairs: 6, maxTokens: 300 });
    expect(groups.flat().sort((x, y) => x - y)).toEqual(lengths.map((_, i) => i));
    let last = Infinity;
    for (const g of groups) {
      expect(g.length).toBeLessThanOrEqual(6);
      const t = g.reduce((s, i) => s + lengths[i]!, 0);
      expect(g.length === 1 || t <= 300).toBe(true);
      for (const i of g) {
        expect(lengths[i]!).toBeLessThanOrEqual(last);
        last = lengths[i]!;
      }
    }
    expect(groups[0]).toEqual([40]);
  });

  it('pack sequences back to back with their lengths and slots', () => {
    const b = packPairs([
      { tokens: [1, 2, 3], slots: [0, 1, 2] },
      { tokens: [4, 5], slots: [1, 0, 1] },
    ]);
    expect([...b.tokens]).toEqual([1, 2, 3, 4, 5]);
    expect([...b.lengths]).toEqual([3, 2]);
    expect([...b.slots]).toEqual([0, 1, 2, 1, 0, 1]);
  });
});

describe('scores from comparisons', () => {
  it('are mean_j (M_ij - M_ji) over all K entries, as Blender.rank with max_logits', () => {
    const k = 2 + Math.floor(rand() * 5);
    const m = Array.from({ length: k }, (_, i) => Array.from({ length: k }, (_, j) => (i === j ? 0 : rand() * 4 - 2)));
    const s = scoresFromComparisons(m);
    for (let i = 0; i < k; i++) {
      let want = 0;
      for (let j = 0; j < k; j++) want += (m[i]![j]! - m[j]![i]!) / k;
      expect(s[i]).toBeCloseTo(want, 12);
    }
    expect(s.reduce((a, b) => a + b, 0)).toBeCloseTo(0, 12);
    expect(scoresFromComparisons([[0]])).toEqual([0]);
    // Not antisymmetric: a pair judged better in both orders still ranks by the difference.
    expect(scoresFromComparisons([[0, 3], [1, 0]])).toEqual([1, -1]);
  });
});

describe("the tokenizer's normalization (what @huggingface/tokenizers does in place of the charsmap; docs/pairrm.md)", () => {
  it.each([
    ['NFKC: the ligature ﬁ is f i', 'ﬁsh', 'fish'],
    ['NFKC: circled and superscript digits are digits', '①x²', '1x2'],
    ['Unicode spaces are spaces', 'red\u00a0cat\u3000dog', 'red cat dog'],
    ['zero-width characters and marks become spaces', 'red\u200bcat', 'red cat'],
    ['control characters are removed', 'red\u0007cat', 'redcat'],
    ['runs of spaces are one space, and the ends are stripped', '  red    cat ', 'red cat'],
    ['a BOM is a space', '\ufeffred', 'red'],
  ])('%s', (_, raw, same) => {
    expect(tok.encode(raw)).toEqual(tok.encode(same));
  });
  it('keeps U+FF5E (the full-width tilde) out of NFKC, as SentencePiece does', () => {
    expect(tok.encode('a\uff5eb')).not.toEqual(tok.encode('a~b'));
  });
});
