// The addon's bf16 models on the CPU (emulated: native/backend/half_emulation.h): new Model and new
// PairRM take precision 'bf16' there; a bf16 model's parameters read back as the fp32 model's
// rounded to bf16, its logits / log-probabilities and PairRM scores stay within 2e-2 (relative
// norm) of the fp32 model with the same seed, its greedy generation gives valid tokens, and it
// plans half the weight bytes. (The native suites test_cpu_bf16, test_model_bf16 and
// test_pairrm_model test the emulation and the models themselves.)
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native, type NativeFinishedPrompt, type NativeLlamaConfig, type NativePairRmConfig } from '../src/native/addon.js';
import { buildSafetensorsHeader, readSafetensorsHeader } from '../src/model/safetensors.js';

const llama: NativeLlamaConfig = {
  vocabSize: 41, hiddenSize: 16, intermediateSize: 28, numLayers: 2, numHeads: 2, numKvHeads: 2, headDim: 8,
  rmsNormEps: 1e-6, ropeTheta: 10000, ropeType: 'default', ropeFactor: 1, ropeLowFreqFactor: 1, ropeHighFreqFactor: 4,
  ropeOriginalMaxPosition: 8192, tieWordEmbeddings: false, sequenceClassification: false, numLabels: 1,
};
const pairrm: NativePairRmConfig = {
  vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, headDim: 4, layerNormEps: 1e-7,
  positionBuckets: 8, maxRelativePositions: 20, c2p: true, p2c: true, normRelEmbeddings: true, numTasks: 1,
};

function relNorm(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let d = 0, w = 0;
  for (let i = 0; i < want.length; i++) {
    d += (got[i]! - want[i]!) ** 2;
    w += want[i]! ** 2;
  }
  return Math.sqrt(d / w);
}
function bf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] = ((u[0]! + 0x7fff + ((u[0]! >>> 16) & 1)) >>> 16) << 16;
  return f[0]!;
}

describe('bf16 models on the CPU (emulated)', () => {
  it('a bf16 Llama holds the rounded weights and tracks fp32', async () => {
    const [f, h] = (['fp32', 'bf16'] as const).map((precision) => new (native().Model)(llama, { precision }));
    try {
      await f!.initRandom(11, 0.1);
      await h!.initRandom(11, 0.1);
      const w32 = f!.readParam('model.layers.0.mlp.up_proj.weight'), w16 = h!.readParam('model.layers.0.mlp.up_proj.weight');
      expect(w16.length).toBe(w32.length);
      expect(Array.from(w16)).toEqual(Array.from(w32, bf16));
      const B = 2, T = 6;
      const tokens = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % llama.vocabSize);
      const attentionMask = new Uint8Array(B * T).fill(1);
      const responseMask = Uint8Array.from({ length: B * T }, (_, i) => (i % T >= 3 ? 1 : 0));
      const batch = { tokens, attentionMask, responseMask, B, T };
      const [l32, l16] = [await f!.logits(batch), await h!.logits(batch)];
      expect(l16.every(Number.isFinite)).toBe(true);
      expect(relNorm(l16, l32)).toBeLessThan(2e-2);
      expect(relNorm(l16, l32)).toBeGreaterThan(0);
      expect(relNorm(await h!.sequenceLogprobs(batch), await f!.sequenceLogprobs(batch))).toBeLessThan(2e-2);
      const done: NativeFinishedPrompt[] = [];
      await h!.generate([Int32Array.from([1, 2, 3])], 2, [5], {
        greedy: true, maxNewTokens: 5, temperature: 1, topP: 1, topK: 0, eosTokenIds: [],
      }, (_, d) => done.push(...d));
      expect(done.map((d) => d.prompt)).toEqual([0]);
      const gen = done[0]!.generations;
      expect(gen).toHaveLength(2);
      for (const g of gen) {
        expect(g.tokens).toHaveLength(5);
        for (const t of g.tokens) expect(t >= 0 && t < llama.vocabSize).toBe(true);
      }
      expect(h!.memoryPlan(4, false).weights).toBe(f!.memoryPlan(4, false).weights / 2);
    } finally {
      f!.free();
      h!.free();
    }
  });

  it('a bf16 PairRM compares pairs as fp32 does', async () => {
    const [f, h] = (['fp32', 'bf16'] as const).map((precision) => new (native().PairRM)(pairrm, { precision }));
    try {
      await f!.initRandom(3, 0.2);
      await h!.initRandom(3, 0.2);
      const batch = {
        tokens: Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
        lengths: Int32Array.from([5, 6]),
        slots: Int32Array.from([0, 2, 4, 0, 3, 5]),
      };
      const [h32, h16] = [await f!.hiddenStates(batch), await h!.hiddenStates(batch)];
      expect(relNorm(h16, h32)).toBeLessThan(2e-2);
      const [c32, c16] = [await f!.compare(batch), await h!.compare(batch)];
      for (let i = 0; i < c32.length; i++) expect(Math.abs(c16[i]! - c32[i]!)).toBeLessThan(2e-2 * Math.max(1, Math.abs(c32[i]!)));
    } finally {
      f!.free();
      h!.free();
    }
  });

  it("a bf16 model's trainer guards its fp32 master: no weight writes under it, no step after a load that failed part way", async () => {
    const m = new (native().Model)(llama, { precision: 'bf16' });
    await m.initRandom(5, 0.1);
    const t = new (native().Trainer)(m, { optimizer: { kind: 'rmsprop' } });
    try {
      expect(() => m.initRandom(6, 0.1)).toThrow(/Model.initRandom: a trainer keeps fp32 master weights of this bf16 model/);
      const info = t.stateInfo();
      expect(info.entries.filter((e) => e.name.endsWith('.master'))).toHaveLength(m.params().length);
      const plan = buildSafetensorsHeader(info.entries.map((e) => ({ name: e.name, shape: [e.numel] })), 'F32',
        { format: 'sppo-native-optimizer', kind: info.kind, step_count: String(info.stepCount) });
      const file = join(mkdtempSync(join(tmpdir(), 'sppo-bf16-state-')), 'optimizer.safetensors');
      await t.saveState(file, plan.header, plan.dataBytes);
      const whole = readFileSync(file);
      const entries = [...readSafetensorsHeader(file).tensors.values()].map((x) => ({ name: x.name, file, offset: x.offset, nbytes: x.nbytes }));
      // The file ends inside its last tensor: the entries before it load, then the read fails.
      const last = entries.reduce((a, b) => (b.offset > a.offset ? b : a));
      truncateSync(file, last.offset + 4);
      await expect(t.loadState(entries, 0)).rejects.toThrow();
      expect(() => t.step(1e-3, 1)).toThrow(/Trainer.step: a loadState that failed part way left this trainer's optimizer state incomplete/);
      writeFileSync(file, whole);
      await t.loadState(entries, 0);
      await expect(t.step(1e-3, 1)).resolves.toMatchObject({ stepped: true });
    } finally {
      t.free();
      m.free();
    }
  });
});
