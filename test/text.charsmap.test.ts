// The exact precompiled charsmap (src/text/charsmap.ts, src/text/tokenizerJson.ts) against Rust
// tokenizers itself: test/fixtures/charsmap/ holds a tokenizer.json with SentencePiece's real
// nmt_nfkc charsmap (DeBERTa-v3's rule) and what Rust tokenizers computes from it, recorded by
// scripts/make-tokenizer-fixtures.py: every Unicode scalar value the charsmap changes, random
// grapheme-heavy strings, and the ids of unusual texts through the whole tokenizer, also with a
// 2000-piece vocabulary trained on the project's docs.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Charsmap, CharsmapError } from '../src/text/charsmap.js';
import { openTokenizerJson } from '../src/text/tokenizerJson.js';
import { readGzJson } from './helpers/gzFixture.js';
import { nmtNfkcCharsmap } from './helpers/pairrmFolder.js';

const dir = join(import.meta.dirname, 'fixtures', 'charsmap');
const readGz = (name: string): Record<string, unknown> => readGzJson(join(dir, name));

interface Expected {
  tokenizers: string;
  rule: string;
  changed: [number, string][];
  strings: [string, string][];
  texts: { text: string; normalized: string; ids: number[] }[];
  unigram: { text: string; ids: number[] }[];
}
const expected = readGz('expected.json.gz') as unknown as Expected;
const tokJson = readGz('tokenizer.json.gz');
const FILE = 'fixture/tokenizer.json';

function charsmapField(json: Record<string, unknown>): { precompiled_charsmap: unknown } {
  const seq = json.normalizer as { normalizers: { type: string; precompiled_charsmap?: unknown }[] };
  const node = seq.normalizers.find((n) => n.type === 'Precompiled');
  if (!node) throw new Error('the fixture has no Precompiled normalizer');
  return node as { precompiled_charsmap: unknown };
}
const base64 = nmtNfkcCharsmap();
const map = Charsmap.fromBase64(base64, 'fixture');

describe(`the precompiled charsmap against Rust tokenizers ${expected.tokenizers} (${expected.rule})`, () => {
  it('maps every Unicode scalar value as Rust does, changed or not', () => {
    const changed = new Map(expected.changed);
    expect(changed.size).toBeGreaterThan(4000);
    const wrong: string[] = [];
    for (let cp = 0; cp < 0x110000; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const s = String.fromCodePoint(cp);
      const want = changed.get(cp) ?? s;
      const got = map.normalize(s);
      if (got !== want && wrong.length < 10) wrong.push(`U+${cp.toString(16).toUpperCase()}: ${JSON.stringify(got)} vs ${JSON.stringify(want)}`);
    }
    expect(wrong).toEqual([]);
  });

  it('normalizes strings of combining marks, jamo, emoji sequences, kana and controls as Rust does', () => {
    expect(expected.strings.length).toBeGreaterThan(1000);
    const wrong = expected.strings.filter(([s, want]) => map.normalize(s) !== want);
    expect(wrong.slice(0, 10).map(([s, want]) => ({ s, want, got: map.normalize(s) }))).toEqual([]);
  });

  it('gives a whole tokenizer the normalized text and the ids of Rust, where the library alone does not', () => {
    const tok = openTokenizerJson(structuredClone(tokJson), {}, FILE);
    const wrong = expected.texts
      .map((t) => ({ text: t.text, normalized: tok.normalizer!(t.text) as string, ids: tok.encode(t.text, { add_special_tokens: false }).ids }))
      .filter((got, i) => got.normalized !== expected.texts[i]!.normalized || JSON.stringify(got.ids) !== JSON.stringify(expected.texts[i]!.ids));
    expect(wrong).toEqual([]);
    // The library alone, on the same file, normalizes some of them otherwise (37 of 333 when
    // recorded; most still give the same ids in this 64-piece vocabulary): the check can tell.
    const approx = new Tokenizer(structuredClone(tokJson), {});
    const missed = expected.texts.filter((t) => approx.normalizer!(t.text) !== t.normalized);
    expect(missed.length).toBeGreaterThan(20);
  });
});

describe('a 2000-piece Unigram vocabulary trained on the project docs, against Rust tokenizers', () => {
  it('gives the ids of Rust for lines of those docs, plain and with unusual characters spliced in', () => {
    const json = readGz('unigram2k.tokenizer.json.gz');
    // The fixture stores nmt_nfkc's charsmap once, in tokenizer.json.gz.
    expect(charsmapField(json).precompiled_charsmap).toBe('(the charsmap of tokenizer.json.gz)');
    charsmapField(json).precompiled_charsmap = base64;
    const tok = openTokenizerJson(json, {}, FILE);
    expect(expected.unigram.length).toBeGreaterThan(600);
    const wrong = expected.unigram
      .map((t) => ({ text: t.text, want: t.ids, got: tok.encode(t.text, { add_special_tokens: false }).ids }))
      .filter((r) => JSON.stringify(r.got) !== JSON.stringify(r.want));
    expect(wrong.slice(0, 5)).toEqual([]);
  });
});

describe('a bad charsmap', () => {
  const blob = Buffer.from(base64, 'base64');
  const withCharsmap = (value: unknown): Record<string, unknown> => {
    const json = structuredClone(tokJson);
    charsmapField(json).precompiled_charsmap = value;
    return json;
  };
  const header = (trieBytes: number, rest: Uint8Array): string => {
    const b = Buffer.alloc(4 + rest.length);
    b.writeUInt32LE(trieBytes, 0);
    b.set(rest, 4);
    return b.toString('base64');
  };
  it.each([
    ['shorter than its header', Buffer.from([1, 2]).toString('base64'), /fewer than its 4-byte header/],
    ['a trie size not a multiple of 4', header(6, new Uint8Array(16)), /trie size 6 is not a positive multiple of 4/],
    ['a trie running past the end', header(blob.readUInt32LE(0), blob.subarray(4, 100)), /runs past its end/],
    ['replacements that are not UTF-8', Buffer.concat([blob, Buffer.from([0xc3])]).toString('base64'), /not valid UTF-8/],
    ['text that is not base64', 'not base64!', /not base64/],
  ])('is refused, naming the file and field: %s', (_what, value, message) => {
    const run = (): unknown => openTokenizerJson(withCharsmap(value), {}, FILE);
    expect(run).toThrow(CharsmapError);
    expect(run).toThrow(message);
    expect(run).toThrow(`${FILE} normalizer.normalizers[1].precompiled_charsmap`);
  });

  it('that is not a string is refused by name', () => {
    expect(() => openTokenizerJson(withCharsmap(12), {}, FILE)).toThrow(`${FILE}: normalizer.normalizers[1].precompiled_charsmap must be a base64 string`);
  });

  it('leaves the library alone where a file has none', () => {
    const tok = openTokenizerJson(withCharsmap(null), {}, FILE);
    // The library's approximation makes a zero-width joiner a space; nmt_nfkc keeps it.
    expect(tok.normalizer!('a\u200db')).toBe('a b');
  });
});

describe('an added token the charsmap normalizes differently from the library', () => {
  it('is refused by name rather than matched the wrong way', () => {
    const json = structuredClone(tokJson);
    const added = json.added_tokens as Record<string, unknown>[];
    // A zero-width joiner: nmt_nfkc keeps it, the library's approximation makes it a space.
    const probe = '<\u200dslot>';
    expect(map.normalize(probe)).not.toBe(new Tokenizer(structuredClone(tokJson), {}).normalizer!(probe));
    added.push({ id: 69, content: probe, single_word: false, lstrip: false, rstrip: false, normalized: true, special: false });
    expect(() => openTokenizerJson(json, {}, FILE)).toThrow(`${FILE}: the added token ${JSON.stringify(probe)} normalizes to`);
  });
});
