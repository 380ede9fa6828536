// PairRM against Hugging Face transformers itself: fixtures recorded in float64 by
// scripts/make-transformers-fixtures.py (where PyTorch + transformers are installed) under
// test/fixtures/transformers-pairrm/. pairrm/: a tiny random DebertaV2Model in llm-blender's
// DebertaV2PairRM layout, with packed pair sequences, their last hidden states and logits
// (targets: within 1e-4 in fp32, 1e-6 in fp64). tokenizer/ (scripts/make-tokenizer-fixtures.py
// --pairrm-tokenizer with a local copy of llm-blender/PairRM-hf): Rust tokenizers' ids for texts
// with unusual Unicode and the collator's truncated segments, against src/pairrm/tokenizer.ts.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openPairRmModel } from '../src/pairrm/model.js';
import { readPairRmConfig } from '../src/pairrm/config.js';
import { PairRmTokenizer } from '../src/pairrm/tokenizer.js';
import { packPairs } from '../src/pairrm/batching.js';
import { scrubSeparator } from '../src/pairrm/collator.js';

const root = join(import.meta.dirname, 'fixtures', 'transformers-pairrm');
const modelDir = join(root, 'pairrm');
const tokDir = join(root, 'tokenizer');
const haveModel = existsSync(join(modelDir, 'expected.json'));
const haveTok = existsSync(join(tokDir, 'expected.json'));

interface Expected {
  transformers: string;
  sequences: number[][];
  slots: [number, number, number][];
  hidden: number[][];
  logits: number[];
}

describe.skipIf(!haveModel)(
  'PairRM against a transformers DebertaV2 fixture (skipped: no test/fixtures/transformers-pairrm/pairrm; run scripts/make-transformers-fixtures.py --only pairrm where PyTorch + transformers are installed)',
  () => {
    const expected = haveModel ? (JSON.parse(readFileSync(join(modelDir, 'expected.json'), 'utf8')) as Expected) : null;
    it.each([
      ['fp32', 1e-4],
      ['fp64', 1e-6],
    ] as const)('hidden states and logits in %s', async (precision, tol) => {
      const e = expected!;
      const model = await openPairRmModel(modelDir, readPairRmConfig(modelDir), { precision });
      try {
        const batch = packPairs(e.sequences.map((tokens, i) => ({ tokens, slots: e.slots[i]! })));
        const hidden = await model.hiddenStates(batch);
        const logits = await model.compare(batch);
        let at = 0;
        e.hidden.forEach((ref, s) => {
          let err = 0, scale = 0;
          ref.forEach((v, i) => {
            err = Math.max(err, Math.abs(hidden[at + i]! - v));
            scale = Math.max(scale, Math.abs(v));
          });
          at += ref.length;
          expect(err / scale, `sequence ${s}, transformers ${e.transformers}`).toBeLessThan(tol);
          expect(Math.abs(logits[s]! - e.logits[s]!)).toBeLessThan(tol * Math.max(1, Math.abs(e.logits[s]!)));
        });
      } finally {
        model.free();
      }
    });
  },
);

interface TokExpected {
  tokenizers: string;
  transformers?: string;
  transformers_differs?: string[];
  texts: { text: string; ids: number[] }[];
  segments: { prefix: string; text: string; max: number; ids: number[] }[];
}

describe.skipIf(!haveTok)(
  'the PairRM tokenizer against Rust tokenizers (skipped: no test/fixtures/transformers-pairrm/tokenizer; needs scripts/make-tokenizer-fixtures.py --pairrm-tokenizer with a local llm-blender/PairRM-hf)',
  () => {
    const e = haveTok ? (JSON.parse(readFileSync(join(tokDir, 'expected.json'), 'utf8')) as TokExpected) : null;
    const tok = haveTok ? PairRmTokenizer.load(tokDir, readPairRmConfig(tokDir).ids) : null;
    it('gives the collator the same truncated segments', () => {
      for (const s of e!.segments) {
        const content = tok!.encode(scrubSeparator(s.prefix + s.text, tok!.sepToken));
        expect([tok!.clsId, ...content.slice(0, s.max - 2), tok!.ids.sep]).toEqual(s.ids);
      }
    });
    it('gives every unusual text the ids of Rust tokenizers reading the same tokenizer.json', () => {
      const differ = e!.texts.filter((t) => JSON.stringify(tok!.encode(t.text)) !== JSON.stringify(t.ids));
      if (e!.transformers) console.log(`[pairrm.transformers] transformers ${e!.transformers} itself tokenizes ${e!.transformers_differs?.length ?? 0} of ${e!.texts.length} texts otherwise (it ignores the charsmap): ${JSON.stringify(e!.transformers_differs ?? [])}`);
      expect(differ.map((t) => ({ text: t.text, want: t.ids, got: tok!.encode(t.text) }))).toEqual([]);
    });
  },
);
