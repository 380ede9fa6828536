// The engine against Hugging Face transformers itself: fixtures recorded in float64 by
// scripts/make-transformers-fixtures.py (on a machine with PyTorch + transformers) under
// test/fixtures/transformers/<name>/. Targets (issue 3): logits within 1e-4 relative (max-norm),
// gradients within 1e-3, greedy continuations identical.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, type EngineModel } from '../src/model/engine.js';
import { readSafetensorsHeader } from '../src/model/safetensors.js';
import type { PreferencePair, ScoredSequence } from '../src/model/types.js';
import { maxNormRelError } from './helpers/llamaReference.js';

const root = join(import.meta.dirname, 'fixtures', 'transformers');
const names = existsSync(root)
  ? readdirSync(root).filter((n) => existsSync(join(root, n, 'expected.json')) && existsSync(join(root, n, 'config.json'))).sort()
  : [];

interface Expected {
  name: string;
  transformers: string;
  sequences: number[][];
  logits?: number[][][];
  scored?: ScoredSequence[];
  sequenceLogprobs?: number[];
  scores?: number[];
  greedy?: { prompt: number[]; tokens: number[] }[];
  pairs?: PreferencePair[];
  beta?: number;
  loss?: number;
}

function readF32Tensors(file: string): Map<string, Float32Array> {
  const h = readSafetensorsHeader(file);
  const bytes = readFileSync(file);
  const out = new Map<string, Float32Array>();
  for (const t of h.tensors.values()) {
    if (t.dtype !== 'F32') throw new Error(`${file}: ${t.name} is ${t.dtype}, expected F32`);
    const a = new Float32Array(t.nbytes / 4);
    for (let i = 0; i < a.length; i++) a[i] = bytes.readFloatLE(t.offset + 4 * i);
    out.set(t.name, a);
  }
  return out;
}

describe.skipIf(names.length === 0)(
  'against transformers fixtures (skipped when test/fixtures/transformers is empty: run scripts/make-transformers-fixtures.py where PyTorch + transformers are installed)',
  () => {
    const models: EngineModel[] = [];
    afterAll(() => models.forEach((m) => m.free()));

    describe.each(names)('%s', (name) => {
      const folder = join(root, name);
      const expected = JSON.parse(readFileSync(join(folder, 'expected.json'), 'utf8')) as Expected;
      // A causal model's fixture has logits, log-probs, greedy continuations and loss gradients; a
      // reward model's has scores. Only the tests of what the fixture holds are registered.
      it('holds what its kind of model is checked on', () => {
        const want = expected.scores ? ['scores'] : ['logits', 'sequenceLogprobs', 'greedy', 'pairs'];
        for (const k of want) expect(expected[k as keyof Expected], `${name}/expected.json: ${k}`).toBeDefined();
      });
      let model: EngineModel | undefined;
      const get = async (): Promise<EngineModel> => {
        if (!model) {
          model = await loadModel(folder);
          models.push(model);
        }
        return model;
      };

      if (expected.logits) it('logits within 1e-4 (max-norm relative) of transformers in float64', async () => {
        const m = await get();
        const got = await m.logits(expected.sequences);
        expected.logits!.forEach((ref, b) => expect(maxNormRelError(got[b]!, ref.flat())).toBeLessThan(1e-4));
      });

      if (expected.sequenceLogprobs) it('sequence log-probs match', async () => {
        const m = await get();
        const got = await m.sequenceLogprobs(expected.scored!);
        expected.sequenceLogprobs!.forEach((ref, b) => expect(Math.abs(got[b]! - ref)).toBeLessThan(1e-4 * Math.max(1, Math.abs(ref))));
      });

      if (expected.greedy) it('greedy continuations are identical', async () => {
        const m = await get();
        for (const g of expected.greedy!) {
          const [out] = await m.generate([g.prompt], [0], { maxNewTokens: g.tokens.length, temperature: 1, topP: 1, greedy: true, eosTokenIds: [] });
          expect(out!.tokens).toEqual(g.tokens);
        }
      });

      if (expected.pairs) it('SPPO loss gradients within 1e-3 for every parameter', async () => {
        const m = await get();
        const tr = await m.createTrainer({ optimizer: { kind: 'rmsprop' } });
        const metrics = await tr.accumulate(expected.pairs!, 'sppo', expected.beta!, 1);
        expect(Math.abs(metrics.loss - expected.loss!)).toBeLessThan(1e-4 * Math.max(1, expected.loss!));
        const ref = readF32Tensors(join(folder, 'gradients.safetensors'));
        const grads = tr.gradients();
        expect([...grads.keys()].sort()).toEqual([...ref.keys()].sort());
        for (const [n, g] of grads) expect(maxNormRelError(g, ref.get(n)!), n).toBeLessThan(1e-3);
        tr.free();
      });

      if (expected.scores) it('reward scores match', async () => {
        const m = await get();
        const got = await m.scores(expected.sequences);
        expected.scores!.forEach((ref, b) => expect(Math.abs(got[b]! - ref)).toBeLessThan(1e-4 * Math.max(1, Math.abs(ref))));
      });
    });
  },
);
