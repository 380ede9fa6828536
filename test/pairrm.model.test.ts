// A PairRM folder through the whole load path (config.json, tokenizer, safetensors checked in
// TypeScript, then the native model) against the float64 reference in helpers/pairrmReference.ts:
// tiny random folders with the real structure (2 layers, 4 heads, log buckets over a range the
// test sequences overrun, both relative terms), in fp64 and fp32; then what loading refuses, and
// how it says so.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPairRm } from '../src/pairrm/model.js';
import { cudaAvailable } from '../src/native/addon.js';
import { CancelledError } from '../src/model/engine.js';
import { parsePairRmConfig, readPairRmConfig } from '../src/pairrm/config.js';
import { expectedPairRmParameters, planPairRmWeights } from '../src/pairrm/checkpoint.js';
import { PairRmTokenizer } from '../src/pairrm/tokenizer.js';
import { encodeSafetensors } from '../src/model/encode.js';
import { packPairs } from '../src/pairrm/batching.js';
import type { PairSequence } from '../src/pairrm/collator.js';
import { bucket, referenceForward } from './helpers/pairrmReference.js';
import { TINY_VOCAB, tinyPairRmConfig, writeTinyPairRm } from './helpers/pairrmFolder.js';
import { seededRandom } from './sppo.seed.js';

const root = mkdtempSync(join(tmpdir(), 'sppo-pairrm-model-'));
const { seed, rand } = seededRandom('pairrm.model');

function randomSequences(n: number, lengths: number[]): PairSequence[] {
  return lengths.slice(0, n).map((L) => {
    const tokens = Array.from({ length: L }, () => Math.floor(rand() * TINY_VOCAB));
    const at = (): number => Math.floor(rand() * L);
    return { tokens, slots: [at(), at(), at()] };
  });
}

describe('a PairRM folder loaded natively', () => {
  const tiny = writeTinyPairRm(join(root, 'tiny'), { seed });
  const cfg = readPairRmConfig(tiny.folder).native;
  // Offsets up to 59 with 8 buckets over 24 positions: exact, logarithmic and clamped rows.
  const seqs = randomSequences(4, [60, 3, 31, 17]);
  const refs = seqs.map((s) => referenceForward(cfg, tiny.tensors, s.tokens, s.slots));

  it('uses every relative row on the test sequences', () => {
    const rows = new Set<number>();
    for (let r = -59; r <= 59; r++) rows.add(Math.min(Math.max(bucket(r, 8, 24) + 8, 0), 15));
    expect(rows.size).toBe(16);
  });

  // bf16 and fp16 (emulated on the CPU): the weights rounded from the folder's F32 on load, every
  // activation rounded once per op; fp16's three more mantissa bits keep it about 8 times closer.
  it.each([
    ['fp64', 1e-10],
    ['fp32', 1e-4],
    ['bf16', 5e-2],
    ['fp16', 8e-3],
  ] as const)('matches the float64 reference in %s', async (precision, tol) => {
    const m = await loadPairRm(tiny.folder, { precision });
    try {
      const batch = packPairs(seqs);
      const hidden = await m.hiddenStates(batch);
      const logits = await m.compare(batch);
      let at = 0;
      refs.forEach((ref, k) => {
        let err = 0, scale = 0;
        for (let i = 0; i < ref.hidden.length; i++) {
          err = Math.max(err, Math.abs(hidden[at + i]! - ref.hidden[i]!));
          scale = Math.max(scale, Math.abs(ref.hidden[i]!));
        }
        at += ref.hidden.length;
        expect(err / scale).toBeLessThan(tol);
        expect(Math.abs(logits[k]! - ref.logit)).toBeLessThan(tol * Math.max(1, Math.abs(ref.logit)));
      });
    } finally {
      m.free();
    }
  });

  it('reads the slot tokens from added_tokens.json when tokenizer.json lacks them', async () => {
    const f = writeTinyPairRm(join(root, 'added'), { seed, addedTokensFile: true }).folder;
    const c = readPairRmConfig(f);
    const tok = PairRmTokenizer.load(f, c.ids);
    expect(tok.encode('<|candidate2|>x')[0]).toBe(c.ids.candidate2);
  });
});

describe('a PairRM call in flight', () => {
  it('stops within about a layer on cancel() and the model works afterwards', async () => {
    const f = writeTinyPairRm(join(root, 'slow'), { seed, layers: 24, hidden: 128, heads: 4, ffn: 512 }).folder;
    const m = await loadPairRm(f);
    try {
      const big = packPairs(randomSequences(8, Array.from({ length: 8 }, () => 300)));
      const t0 = Date.now();
      const full = m.compare(big);
      await full;
      const fullMs = Date.now() - t0;
      const run = m.compare(big);
      await new Promise((r) => setTimeout(r, Math.max(5, fullMs / 4)));
      m.cancel();
      const t1 = Date.now();
      await expect(run).rejects.toBeInstanceOf(CancelledError);
      console.log(`[pairrm.model] a call of ${fullMs} ms stopped ${Date.now() - t1} ms after cancel()`);
      // Only the call in flight is cancelled.
      expect(await m.compare(packPairs(randomSequences(1, [5])))).toHaveLength(1);
    } finally {
      m.free();
    }
  }, 60_000);
});

describe('loading refuses', () => {
  const base = tinyPairRmConfig();
  const f = join(root, 'cfg.json');
  it.each([
    [{ model_type: 'llama' }, /field 'model_type' must be 'deberta-v2'/],
    [{ architectures: ['DebertaV2ForSequenceClassification'] }, /field 'architectures' must be \["DebertaV2PairRM"\]/],
    [{ position_biased_input: null }, /field 'position_biased_input' must be false/],
    [{ type_vocab_size: 2 }, /field 'type_vocab_size' must be 0/],
    [{ hidden_act: 'gelu_new' }, /field 'hidden_act' 'gelu_new' is not supported/],
    [{ share_att_key: false }, /field 'share_att_key' must be true/],
    [{ pos_att_type: 'p2c|p2p' }, /field 'pos_att_type' 'p2p' is not supported/],
    [{ relative_attention: false }, /field 'relative_attention' must be true/],
    [{ conv_kernel_size: 3 }, /field 'conv_kernel_size' must be 0/],
    [{ num_attention_heads: 5 }, /times the other must equal hidden_size/],
    [{ source_prefix_id: null }, /field 'source_prefix_id' is required/],
    [{ cand1_prefix_id: TINY_VOCAB }, /candidate1 token id \d+ is outside the vocabulary/],
    [{ position_buckets: 60 }, /field 'position_buckets' \(60\) needs max_relative_positions - 1 \(23\) above/],
  ])('a config.json with %o', (patch, msg) => {
    const cfg: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete cfg[k];
      else cfg[k] = v;
    }
    expect(() => parsePairRmConfig(cfg, f)).toThrow(msg);
    expect(() => parsePairRmConfig(cfg, f)).toThrow(f);
  });

  it('accepts pos_att_type as a list or as "p2c|c2p", and resolves -1 relative positions', () => {
    const a = parsePairRmConfig({ ...base, pos_att_type: 'p2c|c2p' }, f).native;
    const b = parsePairRmConfig(base, f).native;
    expect(a).toEqual(b);
    expect(b).toMatchObject({ c2p: true, p2c: true, maxRelativePositions: 24, positionBuckets: 8, normRelEmbeddings: true, numTasks: 1 });
  });

  it('a checkpoint with a tensor missing, of the wrong shape, or one too many', () => {
    const t = writeTinyPairRm(join(root, 'ckpt'), { seed });
    const cfg = readPairRmConfig(t.folder).native;
    const shapes = expectedPairRmParameters(cfg);
    const exact = [...t.tensors].map(([name, data]) => ({ name, shape: shapes.get(name)!, data }));
    const file = join(t.folder, 'model.safetensors');
    const write = (list: typeof exact): void => writeFileSync(file, encodeSafetensors(list, 'F32'));
    write(exact.filter((x) => x.name !== 'head_layer.4.bias'));
    expect(() => planPairRmWeights(t.folder, cfg)).toThrow(/missing 1 tensor\(s\): 'head_layer.4.bias'/);
    write(exact.map((x) => (x.name === 'head_layer.1.weight' ? { ...x, shape: [x.shape[1]!, x.shape[0]!] } : x)));
    expect(() => planPairRmWeights(t.folder, cfg)).toThrow(/tensor 'head_layer.1.weight' has shape \[32, 16\] but config.json implies \[16, 32\]/);
    write([...exact, { name: 'pretrained_model.embeddings.position_embeddings.weight', shape: [2, 2], data: new Float32Array(4) }]);
    expect(() => planPairRmWeights(t.folder, cfg)).toThrow(/does not use: 'pretrained_model.embeddings.position_embeddings.weight'/);
    write(exact);
    expect(planPairRmWeights(t.folder, cfg).map((r) => r.name)).toEqual([...shapes.keys()]);
  });

  it('a tokenizer whose slot tokens are not config.json\'s ids, or a folder without one', async () => {
    const t = writeTinyPairRm(join(root, 'tok'), { seed });
    const c = readPairRmConfig(t.folder);
    expect(() => PairRmTokenizer.load(t.folder, { ...c.ids, candidate: c.ids.candidate1 })).toThrow(
      /'<\|candidate\|>' is token \d+ but config.json's cand_prefix_id is \d+/,
    );
    rmSync(join(t.folder, 'tokenizer.json'));
    await expect(loadPairRm(t.folder)).rejects.toThrow(/has no tokenizer.json/);
  });

  it.skipIf(cudaAvailable())('the CUDA device where no GPU is visible, saying why (skipped: this machine has one)', async () => {
    await expect(loadPairRm(join(root, 'tiny'), { device: 'cuda' })).rejects.toThrow(/device 'cuda' is not available: \S/);
  });
});
