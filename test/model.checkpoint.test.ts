// Hugging Face folders in and out through the engine: exact loads of F32/BF16/F16 weights,
// save -> load round trips (single file, shards with an index, BF16), the written config and
// tokenizer files, optimizer state, and malformed checkpoints refused with clear errors.
import { existsSync, readFileSync, readdirSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { native as addon } from '../src/native/addon.js';
import { readModelConfig, toNativeConfig } from '../src/model/config.js';
import { encodeSafetensors, roundTo } from '../src/model/encode.js';
import { createRandomModel, loadModel, type EngineModel } from '../src/model/engine.js';
import { openCheckpoint, readSafetensorsHeader } from '../src/model/safetensors.js';
import { SeededRandom } from '../src/util/rng.js';
import { tinyConfig } from './helpers/tinyModels.js';
import type { PreferencePair } from '../src/model/types.js';
import { makeTempDir, modelsFreedAfterAll, randomSequences, testSeed, tiny } from './helpers/modelFixtures.js';
import { cudaAvailable } from '../src/native/addon.js';

const seed = testSeed('model.checkpoint');
const rng = new SeededRandom(seed);
const rand = () => rng.uniform();
const { dir, cleanup } = makeTempDir('sppo-ckpt-');
const open = modelsFreedAfterAll(cleanup);
async function load(folder: string): Promise<EngineModel> {
  const m = await loadModel(folder);
  open.push(m);
  return m;
}

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return ua.every((v, i) => v === ub[i]);
}

function expectSameParams(a: EngineModel, b: EngineModel): void {
  expect(b.parameters()).toEqual(a.parameters());
  for (const p of a.parameters()) expect(bitsEqual(a.parameter(p.name), b.parameter(p.name)), p.name).toBe(true);
}

describe('loading', () => {
  it.each(['F32', 'BF16', 'F16'] as const)('reads %s weights exactly (converted to fp32)', async (dtype) => {
    const t = tiny(dir, 'llama2', seed + 1, { dtype }, `load-${dtype}`);
    const m = await load(t.folder);
    for (const [name, want] of t.tensors) expect(bitsEqual(m.parameter(name), want), name).toBe(true);
    expect(m.folder).toBe(t.folder);
    expect(m.eosTokenIds).toEqual([2]);
  });

  it('reads a sharded folder and merges generation_config eos ids', async () => {
    const t = tiny(dir, 'llama3', seed + 2, { maxShardBytes: 16_000 }, 'sharded-in');
    expect(existsSync(join(t.folder, 'model.safetensors.index.json'))).toBe(true);
    const m = await load(t.folder);
    for (const [name, want] of t.tensors) expect(bitsEqual(m.parameter(name), want), name).toBe(true);
    expect(m.eosTokenIds).toEqual([2, 3]);
    expect(m.parameters().some((p) => p.name === 'lm_head.weight')).toBe(false);
  });

  it.skipIf(cudaAvailable())("refuses device 'cuda' clearly where no GPU is visible (skipped: this machine has one; test/pipeline.cuda.test.ts loads models there)", async () => {
    const t = tiny(dir, 'llama2', seed + 3, {}, 'cuda');
    await expect(loadModel(t.folder, { device: 'cuda' })).rejects.toThrow(/device 'cuda' is not available/);
  });
});

describe('malformed checkpoints are refused with clear errors', () => {
  let k = 0;
  const fresh = () => tiny(dir, 'llama2', seed + 10, {}, `bad-${k++}`);
  const file = (t: { folder: string }) => join(t.folder, 'model.safetensors');

  /** Rewrites model.safetensors from `t`'s tensors after `edit`. */
  function rewrite(t: ReturnType<typeof fresh>, edit: (ts: { name: string; shape: number[]; data: Float32Array }[]) => void): void {
    const ts = [...t.tensors].map(([name, data]) => ({ name, shape: [...openCheckpoint(t.folder).tensors.get(name)!.shape], data }));
    edit(ts);
    writeFileSync(file(t), encodeSafetensors(ts, 'F32'));
  }

  it('truncated data', async () => {
    const t = fresh();
    const size = readFileSync(file(t)).length;
    truncateSync(file(t), size - 1 - Math.floor(rand() * 100));
    await expect(loadModel(t.folder)).rejects.toThrow(/model\.safetensors: tensor '.*': data_offsets .* run past the end/);
  });

  it('header length absurd', async () => {
    const t = fresh();
    const bytes = readFileSync(file(t));
    bytes.writeBigUInt64LE(2n ** 63n + BigInt(Math.floor(rand() * 1000)), 0);
    writeFileSync(file(t), bytes);
    await expect(loadModel(t.folder)).rejects.toThrow(/model\.safetensors: header length \d+ is absurd/);
  });

  it('shapes disagreeing with the config', async () => {
    const t = fresh();
    const cfg = JSON.parse(readFileSync(join(t.folder, 'config.json'), 'utf8'));
    cfg.intermediate_size = 48;
    writeFileSync(join(t.folder, 'config.json'), JSON.stringify(cfg));
    await expect(loadModel(t.folder)).rejects.toThrow(/model\.safetensors: tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[64, 32\] but config\.json implies \[48, 32\]/);
  });

  it('missing tensors', async () => {
    const t = fresh();
    rewrite(t, (ts) => ts.splice(ts.findIndex((x) => x.name === 'model.layers.1.self_attn.v_proj.weight'), 1));
    await expect(loadModel(t.folder)).rejects.toThrow(/missing 1 tensor\(s\): 'model\.layers\.1\.self_attn\.v_proj\.weight'/);
  });

  it('unexpected tensors (rotary inv_freq buffers are ignored)', async () => {
    const t = fresh();
    rewrite(t, (ts) => {
      ts.push({ name: 'model.layers.0.self_attn.rotary_emb.inv_freq', shape: [4], data: new Float32Array(4).fill(1) });
      ts.push({ name: 'model.layers.0.self_attn.q_proj.bias', shape: [32], data: new Float32Array(32) });
    });
    await expect(loadModel(t.folder)).rejects.toThrow(/1 tensor\(s\) this LlamaForCausalLM does not use: 'model\.layers\.0\.self_attn\.q_proj\.bias'/);
  });

  it('a dtype the engine does not read', async () => {
    const t = fresh();
    const bytes = readFileSync(file(t));
    const len = Number(bytes.readBigUInt64LE(0));
    const header = bytes.subarray(8, 8 + len).toString();
    // Same byte count, another dtype: 2 x I16 in place of one F32 would change the shape, so use I32.
    const changed = header.replace('"model.norm.weight":{"dtype":"F32"', '"model.norm.weight":{"dtype":"I32"');
    expect(changed).not.toBe(header);
    Buffer.from(changed).copy(bytes, 8);
    writeFileSync(file(t), bytes);
    await expect(loadModel(t.folder)).rejects.toThrow(/tensor 'model\.norm\.weight' has dtype I32; only F32, BF16 and F16 are read/);
  });

  it('overlapping ranges', async () => {
    const t = fresh();
    const bytes = readFileSync(file(t));
    const len = Number(bytes.readBigUInt64LE(0));
    const h = JSON.parse(bytes.subarray(8, 8 + len).toString());
    const [a, b] = ['model.norm.weight', 'model.layers.1.post_attention_layernorm.weight'];
    h[b].data_offsets = [h[a].data_offsets[0] + 4, h[a].data_offsets[1] + 4];
    const text = JSON.stringify(h).padEnd(len, ' ');
    expect(text.length).toBe(len);
    Buffer.from(text).copy(bytes, 8);
    writeFileSync(file(t), bytes);
    await expect(loadModel(t.folder)).rejects.toThrow(/overlap/);
  });

  it('the core re-checks byte ranges against the file (never trusts the caller)', async () => {
    const t = fresh();
    const native = new (addon().Model)(toNativeConfig(readModelConfig(t.folder).config));
    try {
      const size = readFileSync(file(t)).length;
      const entry = { name: 'model.norm.weight', file: file(t), offset: size - 64, nbytes: 128, dtype: 'F32' };
      await expect(native.loadTensors([entry])).rejects.toThrow(/byte range .* lies outside the file/);
      // Argument checks happen before queueing, so they throw synchronously.
      expect(() => native.loadTensors([{ ...entry, offset: 8, nbytes: 64 }])).toThrow(/has 64 bytes, the parameter needs 32 elements/);
      expect(() => native.loadTensors([{ ...entry, dtype: 'F64' }])).toThrow(/unsupported dtype 'F64'/);
      expect(() => native.loadTensors([{ ...entry, name: 'model.bogus' }])).toThrow(/'model\.bogus' is not a parameter/);
      await expect(native.loadTensors([{ ...entry, file: join(dir, 'missing.safetensors'), offset: 0 }])).rejects.toThrow(/missing\.safetensors: cannot open/);
    } finally {
      native.free();
    }
  });
});

describe('saving', () => {
  it('save -> load is bit-exact in F32, with the Hugging Face files', async () => {
    const t = tiny(dir, 'llama2', seed + 20, {}, 'save-src');
    writeFileSync(join(t.folder, 'tokenizer.json'), JSON.stringify({ version: '1.0', seed }));
    writeFileSync(join(t.folder, 'tokenizer_config.json'), JSON.stringify({ chat_template: '{{ x }}' }));
    const a = await load(t.folder);
    const out = join(dir, 'saved-f32');
    await a.save(out, { tokenizerFrom: t.folder });
    const files = readdirSync(out).sort();
    expect(files).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    expect(readFileSync(join(out, 'tokenizer.json'), 'utf8')).toBe(readFileSync(join(t.folder, 'tokenizer.json'), 'utf8'));
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(cfg).toMatchObject({ architectures: ['LlamaForCausalLM'], model_type: 'llama', torch_dtype: 'float32', dtype: 'float32', vocab_size: 64, hidden_act: 'silu' });
    expect(JSON.parse(readFileSync(join(out, 'generation_config.json'), 'utf8'))).toMatchObject({ eos_token_id: 2, bos_token_id: 1 });
    expect(readSafetensorsHeader(join(out, 'model.safetensors')).metadata).toEqual({ format: 'pt' });
    const b = await load(out);
    expectSameParams(a, b);
    // Without tokenizerFrom, the tokenizer of the folder the model came from travels along.
    const again = join(dir, 'saved-f32-again');
    await b.save(again);
    expect(readFileSync(join(again, 'tokenizer_config.json'), 'utf8')).toBe(readFileSync(join(t.folder, 'tokenizer_config.json'), 'utf8'));
    const seqs = randomSequences(rand, 2, 64, 3, 9);
    const [la, lb] = [await a.logits(seqs), await b.logits(seqs)];
    for (let i = 0; i < seqs.length; i++) expect(bitsEqual(la[i]!, lb[i]!)).toBe(true);
  });

  it('shards above maxShardBytes with model.safetensors.index.json, and replaces a previous layout', async () => {
    const t = tiny(dir, 'mistral', seed + 21, {}, 'shard-src');
    const a = await load(t.folder);
    const out = join(dir, 'saved-sharded');
    await a.save(out); // first a single file, then sharded over it
    await a.save(out, { maxShardBytes: 20_000 });
    const shards = readdirSync(out).filter((f) => f.endsWith('.safetensors')).sort();
    expect(shards.length).toBeGreaterThan(1);
    shards.forEach((f, i) => expect(f).toBe(`model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`));
    const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
    const total = a.parameters().reduce((s, p) => s + p.shape.reduce((x, y) => x * y, 1) * 4, 0);
    expect(index.metadata.total_size).toBe(total);
    expect(Object.keys(index.weight_map).sort()).toEqual(a.parameters().map((p) => p.name).sort());
    for (const f of shards) expect(readFileSync(join(out, f)).length).toBeLessThanOrEqual(20_000 + 4096);
    expectSameParams(a, await load(out));
  });

  it('BF16 save -> load is within bf16 rounding (exactly the rounded values)', async () => {
    const a = await createRandomModel(tinyConfig('llama3'), seed % 100000, { std: 0.5 });
    open.push(a);
    const out = join(dir, 'saved-bf16');
    await a.save(out, { dtype: 'bfloat16' });
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(cfg.torch_dtype).toBe('bfloat16');
    expect(cfg.tie_word_embeddings).toBe(true);
    const h = readSafetensorsHeader(join(out, 'model.safetensors'));
    expect(h.tensors.has('lm_head.weight')).toBe(false); // tied: not written, as transformers
    expect([...h.tensors.values()].every((e) => e.dtype === 'BF16')).toBe(true);
    const b = await load(out);
    for (const p of a.parameters()) {
      const x = a.parameter(p.name);
      const y = b.parameter(p.name);
      let differs = false;
      for (let i = 0; i < x.length; i++) {
        expect(y[i]).toBe(roundTo('BF16', x[i]!));
        if (y[i] !== x[i]) differs = true;
      }
      if (p.shape.length === 2) expect(differs, `${p.name} was really rounded`).toBe(true);
    }
  });

  it('saves a reward model that loads back as one', async () => {
    const t = tiny(dir, 'reward', seed + 22, {}, 'reward-src');
    const a = await load(t.folder);
    const out = join(dir, 'saved-reward');
    await a.save(out);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))).toMatchObject({ architectures: ['LlamaForSequenceClassification'], num_labels: 1, pad_token_id: 0 });
    const b = await load(out);
    expectSameParams(a, b);
    const seqs = randomSequences(rand, 3, 64, 2, 8);
    expect(Array.from(await b.scores(seqs))).toEqual(Array.from(await a.scores(seqs)));
  });

  it('refuses bad save options', async () => {
    const t = tiny(dir, 'llama2', seed + 23, {}, 'save-opts');
    const a = await load(t.folder);
    await expect(a.save(join(dir, 'x1'), { tokenizerFrom: join(dir, 'x1-none') })).rejects.toThrow(/holds no tokenizer files/);
    await expect(a.save(join(dir, 'x2'), { dtype: 'float16' as never })).rejects.toThrow(/dtype must be 'float32' or 'bfloat16'/);
  });
});

describe('optimizer state', () => {
  function pairs(vocab: number): PreferencePair[] {
    return Array.from({ length: 2 }, () => {
      const [c, r] = randomSequences(rand, 2, vocab, 4, 8);
      return { chosen: { tokens: c!, promptLength: 2 }, rejected: { tokens: r!, promptLength: 2 }, refChosen: -10 * rand(), refRejected: -10 * rand(), chosenProbs: rand(), chosenProbsWin: rand(), chosenProbsLose: rand() };
    });
  }

  it.each(['rmsprop', 'adamw'] as const)('%s: save/load round trip resumes identically', async (kind) => {
    const t = tiny(dir, 'llama2', seed + 30, {}, `opt-${kind}`);
    const optimizer = { kind, weightDecay: kind === 'adamw' ? 0.01 : 0 };
    const a = await load(t.folder);
    const ta = await a.createTrainer({ optimizer });
    const p1 = pairs(64);
    await ta.accumulate(p1, 'sppo', 0.1, 1);
    await ta.step(1e-3, 1);
    const ckpt = join(dir, `ckpt-${kind}`);
    await a.save(ckpt);
    const stateFile = join(ckpt, 'optimizer.safetensors');
    await ta.saveState(stateFile);
    const h = readSafetensorsHeader(stateFile);
    expect(h.metadata).toMatchObject({ kind, step_count: '1' });
    expect(h.tensors.size).toBe(a.parameters().length * (kind === 'adamw' ? 2 : 1));

    const b = await load(ckpt);
    const wrong = await b.createTrainer({ optimizer: { kind: kind === 'adamw' ? 'rmsprop' : 'adamw' } });
    await expect(wrong.loadState(stateFile)).rejects.toThrow(/holds '.*' optimizer state but the trainer uses/);
    wrong.free();
    const tb = await b.createTrainer({ optimizer });
    await tb.loadState(stateFile);
    const p2 = pairs(64);
    for (const tr of [ta, tb]) {
      await tr.accumulate(p2, 'sppo', 0.1, 1);
      await tr.step(1e-3, 1);
    }
    expectSameParams(a, b);
  });

  it('refuses a file that is not an optimizer state', async () => {
    const t = tiny(dir, 'llama2', seed + 31, {}, 'opt-bad');
    const m = await load(t.folder);
    const tr = await m.createTrainer({ optimizer: { kind: 'rmsprop' } });
    await expect(tr.loadState(join(t.folder, 'model.safetensors'))).rejects.toThrow(/not an sppo-native optimizer state/);
    renameSync(join(t.folder, 'model.safetensors'), join(t.folder, 'moved.safetensors'));
    await expect(tr.loadState(join(t.folder, 'model.safetensors'))).rejects.toThrow(/cannot open/);
  });
});
