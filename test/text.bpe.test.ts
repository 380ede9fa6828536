// The tokenizers of policy models against Rust tokenizers: the two BPE shapes Llama-family models
// ship (Llama 3's byte-level BPE with its regex split; Llama 2 / Mistral's SentencePiece BPE with
// byte fallback), trained on the project's docs by scripts/make-tokenizer-fixtures.py, with Rust's
// ids for 642 texts (unusual Unicode, lines of the docs, random grapheme-heavy strings, spacing and
// contraction cases) in test/fixtures/bpe/. src/text/codec.ts opens them through the same
// openTokenizerJson as PairRM's.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { openTokenizerJson } from '../src/text/tokenizerJson.js';
import { readGzJson } from './helpers/gzFixture.js';

const dir = join(import.meta.dirname, 'fixtures', 'bpe');
const readGz = (name: string): Record<string, unknown> => readGzJson(join(dir, name));
const expected = readGz('expected.json.gz') as { tokenizers: string; texts: string[]; llama3: number[][]; llama2: number[][] };

describe(`policy tokenizers against Rust tokenizers ${expected.tokenizers}`, () => {
  it.each([
    ['llama3', 'Llama 3 byte-level BPE'],
    ['llama2', 'Llama 2 / Mistral SentencePiece BPE with byte fallback'],
  ] as const)('%s (%s) gives every text the ids of Rust', (name, _shape) => {
    const file = `${name}-bpe.tokenizer.json.gz`;
    const tok = openTokenizerJson(readGz(file), {}, file);
    const want = expected[name];
    expect(want.length).toBe(expected.texts.length);
    expect(expected.texts.length).toBeGreaterThan(600);
    const wrong = expected.texts
      .map((text, i) => ({ text, want: want[i], got: tok.encode(text, { add_special_tokens: false }).ids }))
      .filter((r) => JSON.stringify(r.got) !== JSON.stringify(r.want));
    expect(wrong.slice(0, 5)).toEqual([]);
    // Not a vocabulary of single bytes: merges are exercised (ids per UTF-8 byte well under 1).
    const bytes = expected.texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
    const ids = want.reduce((n, w) => n + w.length, 0);
    expect(ids / bytes).toBeLessThan(0.7);
  });
});
