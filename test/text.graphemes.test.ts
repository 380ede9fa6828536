// Grapheme clusters cut where a boundary is certain (src/text/graphemes.ts) against Intl.Segmenter
// on whole strings: random strings from every pool the rules care about and from all of Unicode,
// and the certainty rule itself, character by character and on random pairs.
import { describe, expect, it } from 'vitest';
import { certainBoundary, forEachGrapheme } from '../src/text/graphemes.js';
import { seededRandom } from './sppo.seed.js';

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
const reference = (s: string): string[] => Array.from(segmenter.segment(s), (x) => x.segment);
const ours = (s: string): string[] => {
  const out: string[] = [];
  forEachGrapheme(s, (cluster, cp) => {
    if (cp >= 0) expect(String.fromCodePoint(cp)).toBe(cluster);
    out.push(cluster);
  });
  return out;
};
const splits = (a: number, b: number): boolean => reference(String.fromCodePoint(a) + String.fromCodePoint(b)).length === 2;
const isScalar = (cp: number): boolean => cp < 0xd800 || cp > 0xdfff;

const span = (lo: number, hi: number): number[] => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
const POOLS: number[][] = [
  span(0x20, 0x7e), // ASCII
  [0x0d, 0x0a, 0x09, 0x00, 0x7f, 0x85, 0xad, 0x200b, 0x200c, 0x200d, 0x2028, 0xfeff], // controls, format
  span(0x0300, 0x036f), // combining marks
  [...span(0x1100, 0x1112), ...span(0x1161, 0x1175), ...span(0x11a8, 0x11c2), ...span(0xac00, 0xac1f), ...span(0xa960, 0xa965), ...span(0xd7b0, 0xd7b4)], // Hangul
  [...span(0x1f600, 0x1f64f), ...span(0x1f3fb, 0x1f3ff), 0xfe0f, 0x2764, 0x00a9, 0x20e3, 0x23], // emoji, keycaps
  span(0x1f1e6, 0x1f1ff), // regional indicators
  [...span(0x0915, 0x0939), 0x094d, 0x093e, 0x0940, ...span(0x0995, 0x09a8), 0x09cd], // Indic conjuncts
  [...span(0x0e01, 0x0e3a), 0x0e33, 0x0eb3, 0x0e81], // Thai, Lao
  [0x0600, 0x0601, 0x06dd, 0x070f, 0x0d4e, 0x110bd, 0x111c2, 0x11a3a], // Prepend
  span(0x4e00, 0x4e3f), // Han
  [...span(0xff66, 0xff9f), 0x3099, 0x309a], // half-width kana, sound marks
];

describe('grapheme clusters cut at certain boundaries', () => {
  it('equal Intl.Segmenter on random strings from the pools the rules care about', () => {
    const { rand } = seededRandom('text.graphemes.pools');
    for (let n = 0; n < 20000; n++) {
      const len = 1 + Math.floor(rand() * 24);
      let s = '';
      for (let i = 0; i < len; i++) {
        const pool = POOLS[Math.floor(rand() * POOLS.length)]!;
        s += String.fromCodePoint(pool[Math.floor(rand() * pool.length)]!);
      }
      expect(ours(s), JSON.stringify(s)).toEqual(reference(s));
    }
  });

  it('equal Intl.Segmenter on random strings drawn from all of Unicode', () => {
    const { rand } = seededRandom('text.graphemes.unicode');
    for (let n = 0; n < 20000; n++) {
      let s = '';
      for (let i = 0, len = 1 + Math.floor(rand() * 16); i < len; i++) {
        let cp: number;
        do cp = rand() < 0.5 ? Math.floor(rand() * 0x10000) : Math.floor(rand() * 0x110000);
        while (!isScalar(cp));
        s += String.fromCodePoint(cp);
      }
      expect(ours(s), JSON.stringify(s)).toEqual(reference(s));
    }
  });

  it('only cut where Intl.Segmenter breaks: every BMP character before and after a letter, and random pairs', () => {
    const wrong: string[] = [];
    const note = (a: number, b: number): void => {
      if (wrong.length < 10) wrong.push(`U+${a.toString(16)} U+${b.toString(16)}`);
    };
    const partners = [0x61, 0x20, 0x4e00, 0xac00, 0x3042, 0xff21];
    let cuts = 0;
    for (let cp = 0; cp < 0x10000; cp++) {
      if (!isScalar(cp)) continue;
      for (const p of partners) {
        if (certainBoundary(cp, p) && (cuts++, !splits(cp, p))) note(cp, p);
        if (certainBoundary(p, cp) && (cuts++, !splits(p, cp))) note(p, cp);
      }
    }
    const { rand } = seededRandom('text.graphemes.pairs');
    for (let n = 0; n < 200000; n++) {
      const a = Math.floor(rand() * 0x110000), b = Math.floor(rand() * 0x110000);
      if (isScalar(a) && isScalar(b) && certainBoundary(a, b) && !splits(a, b)) note(a, b);
    }
    expect(wrong).toEqual([]);
    // The rule must cut often enough to matter: most letters on both sides.
    expect(cuts).toBeGreaterThan(200000);
  });

  it('keep a long run without certain boundaries whole (combining marks on one letter)', () => {
    const s = `a${'\u0301'.repeat(3000)}b`;
    expect(ours(s)).toEqual(reference(s));
    expect(ours(s).length).toBe(2);
  });
});
