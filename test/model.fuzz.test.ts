// Fuzzing the model loader with corrupted checkpoints: valid tiny checkpoints (single file and
// sharded, F32/BF16/F16) get a few hundred random mutations of the safetensors header bytes, header
// length, data length, config.json and the shard index (byte flips, truncation, numbers made huge,
// negative, fractional or NaN-like, overlapping ranges, wrong dtypes, missing files). Every load
// must either succeed with tensors equal to what the files hold (checked by an independent decoder
// here) or reject with an Error naming a file of the folder; never crash, hang or allocate wildly.
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../src/model/engine.js';
import { parseSafetensorsHeader } from '../src/model/safetensors.js';
import { SeededRandom } from '../src/util/rng.js';
import { writeTinyCheckpoint, type TinyKind } from './helpers/tinyModels.js';
import type { LoadableDtype } from '../src/model/safetensors.js';
import { makeTempDir, testSeed } from './helpers/modelFixtures.js';

const seed = testSeed('model.fuzz');
const rng = new SeededRandom(seed);
const pick = <T>(xs: readonly T[]): T => xs[rng.int(0, xs.length - 1)]!;
const { dir, cleanup } = makeTempDir('sppo-fuzz-model-');
afterAll(cleanup);

// A few hundred cases take about a second; SPPO_FUZZ_CASES runs a longer hunt.
const CASES = Number(process.env.SPPO_FUZZ_CASES ?? 600);

type Files = Map<string, Buffer>;

interface Base {
  label: string;
  files: Files;
}

const bases: Base[] = [];

beforeAll(() => {
  const variants: { kind: TinyKind; dtype: LoadableDtype; maxShardBytes?: number }[] = [
    { kind: 'llama3', dtype: 'BF16' },
    { kind: 'llama2', dtype: 'F32', maxShardBytes: 24_000 },
    { kind: 'mistral', dtype: 'F16' },
    { kind: 'reward', dtype: 'F32', maxShardBytes: 40_000 },
    { kind: 'llama3', dtype: 'F16', maxShardBytes: 12_000 },
  ];
  for (const v of variants) {
    const label = `${v.kind}-${v.dtype}${v.maxShardBytes ? '-sharded' : ''}`;
    const folder = join(dir, `base-${label}`);
    writeTinyCheckpoint(folder, v.kind, rng.int(0, 2 ** 30), { dtype: v.dtype, maxShardBytes: v.maxShardBytes });
    const files: Files = new Map();
    for (const f of readdirSync(folder)) files.set(f, readFileSync(join(folder, f)));
    bases.push({ label, files });
  }
});

// ---- mutations ------------------------------------------------------------------------------

/** Values that break numeric fields: huge, negative, fractional, NaN-like, wrong types. */
const WEIRD: readonly unknown[] = [
  2 ** 53, 2 ** 53 + 2, 2 ** 31, 2 ** 32 + 1, 2 ** 40, 1e300, -1, -(2 ** 63), -0.5, 0, 0.5, 1.5, 3.000001,
  'NaN', 'Infinity', '-Infinity', '1e999', '12', '', null, true, [], {}, [1, 2], { value: 3 },
];
/** Raw JSON number tokens JSON.stringify cannot produce (and one that is not JSON at all). */
const RAW_TOKENS: readonly string[] = ['1e999', '-1e999', '1e-400', '-0', '9007199254740993', '1.0000000000000002', '1e2', '2.0', 'NaN'];

/** JSON text of `obj`, where string values `@raw:<token>` become the bare token. */
function jsonWithRaw(obj: unknown, pretty: boolean): string {
  const text = JSON.stringify(obj, null, pretty ? 2 : undefined);
  return text.replace(/"@raw:([^"]*)"/g, '$1');
}

function weirdValue(current: unknown): unknown {
  const r = rng.uniform();
  if (r < 0.15) return `@raw:${pick(RAW_TOKENS)}`;
  if (r < 0.3 && typeof current === 'number') return pick([current + 1, current - 1, current * 2, -current, current + 0.5, current * 1024]);
  return pick(WEIRD);
}

interface StFile {
  name: string;
  json: Record<string, unknown>;
  data: Buffer;
}

function safetensorsFiles(files: Files): string[] {
  return [...files.keys()].filter((f) => f.endsWith('.safetensors'));
}

function pickSt(files: Files): string | null {
  const names = safetensorsFiles(files);
  return names.length > 0 ? pick(names) : null;
}

function splitSt(name: string, buf: Buffer): StFile | null {
  if (buf.length < 8) return null;
  const n = Number(buf.readBigUInt64LE(0));
  if (n > buf.length - 8) return null;
  try {
    const json = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as unknown;
    if (typeof json !== 'object' || json === null || Array.isArray(json)) return null;
    return { name, json: json as Record<string, unknown>, data: buf.subarray(8 + n) };
  } catch {
    return null;
  }
}

function joinSt(st: StFile, pad: boolean): Buffer {
  let header = jsonWithRaw(st.json, false);
  if (pad) header += ' '.repeat((8 - (Buffer.byteLength(header) % 8)) % 8);
  const h = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, st.data]);
}

function headerLength(buf: Buffer): number {
  return buf.length >= 8 ? Number(buf.readBigUInt64LE(0)) : 0;
}

/** Each mutation edits `files` in place and says what it did (for the failure report). */
type Mutation = (files: Files) => string;

const JSON_CHARS = '{}[]":,0123456789-+.eE \\';

const flipHeaderByte: Mutation = (files) => {
  const f = pickSt(files);
  if (!f) return 'no safetensors file left';
  const buf = Buffer.from(files.get(f)!);
  const n = Math.min(headerLength(buf), buf.length - 8);
  if (n <= 0) return `${f}: no header to flip`;
  const count = rng.int(1, 3);
  const where: number[] = [];
  for (let k = 0; k < count; k++) {
    const pos = 8 + rng.int(0, n - 1);
    buf[pos] = rng.uniform() < 0.5 ? rng.int(0, 255) : JSON_CHARS.charCodeAt(rng.int(0, JSON_CHARS.length - 1));
    where.push(pos);
  }
  files.set(f, buf);
  return `${f}: header bytes ${where.join(',')} changed`;
};

const setHeaderLength: Mutation = (files) => {
  const f = pickSt(files);
  if (!f) return 'no safetensors file left';
  const buf = Buffer.from(files.get(f)!);
  const n = headerLength(buf);
  const choices: bigint[] = [
    0n, 1n, 2n, BigInt(n - 1), BigInt(n + 1), BigInt(n + 8), BigInt(n - 8), BigInt(buf.length - 8), BigInt(buf.length),
    2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, 100n * 1024n * 1024n + 1n, BigInt(rng.int(0, buf.length)),
  ];
  const v = pick(choices);
  buf.writeBigUInt64LE(v < 0n ? 0n : BigInt.asUintN(64, v), 0);
  files.set(f, buf);
  return `${f}: header length ${n} -> ${v}`;
};

const truncateFile: Mutation = (files) => {
  const f = pickSt(files);
  if (!f) return 'no safetensors file left';
  const buf = files.get(f)!;
  const dataStart = 8 + headerLength(buf);
  // Mostly inside the data section (the common real-world truncation), sometimes anywhere.
  const len = rng.uniform() < 0.7 && dataStart < buf.length ? rng.int(dataStart, buf.length - 1) : rng.int(0, buf.length - 1);
  files.set(f, buf.subarray(0, len));
  return `${f}: truncated ${buf.length} -> ${len}`;
};

const extendFile: Mutation = (files) => {
  const f = pickSt(files);
  if (!f) return 'no safetensors file left';
  const extra = Buffer.alloc(rng.int(1, 300));
  for (let i = 0; i < extra.length; i++) extra[i] = rng.int(0, 255);
  files.set(f, Buffer.concat([files.get(f)!, extra]));
  return `${f}: ${extra.length} bytes appended`;
};

const flipDataByte: Mutation = (files) => {
  const f = pickSt(files);
  if (!f) return 'no safetensors file left';
  const buf = Buffer.from(files.get(f)!);
  const start = 8 + headerLength(buf);
  if (start >= buf.length) return `${f}: no data to flip`;
  const pos = rng.int(start, buf.length - 1);
  buf[pos] = rng.int(0, 255);
  files.set(f, buf);
  return `${f}: data byte ${pos} changed`;
};

const editHeaderJson: Mutation = (files) => {
  const f = pickSt(files);
  if (!f) return 'no safetensors file left';
  const st = splitSt(f, files.get(f)!);
  if (!st) return `${f}: header not editable`;
  const names = Object.keys(st.json).filter((k) => k !== '__metadata__');
  if (names.length === 0) return `${f}: no tensors`;
  const name = pick(names);
  const entry = { ...(st.json[name] as Record<string, unknown>) };
  const offs = Array.isArray(entry.data_offsets) ? [...(entry.data_offsets as unknown[])] : [0, 0];
  const shape = Array.isArray(entry.shape) ? [...(entry.shape as unknown[])] : [];
  const other = st.json[pick(names)] as Record<string, unknown>;
  let what: string;
  switch (rng.int(0, 14)) {
    case 0: {
      const i = rng.int(0, 1);
      offs[i] = weirdValue(offs[i]);
      entry.data_offsets = offs;
      what = `data_offsets[${i}] = ${JSON.stringify(offs[i])}`;
      break;
    }
    case 1: {
      // Shift the range, keeping its size: runs past the end or into a neighbour.
      const d = pick([1, 2, 8, -2, 64, st.data.length, 2 ** 52]);
      entry.data_offsets = [(offs[0] as number) + d, (offs[1] as number) + d];
      what = `data_offsets shifted by ${d}`;
      break;
    }
    case 2:
      entry.data_offsets = other.data_offsets;
      what = `data_offsets copied from another tensor (overlap)`;
      break;
    case 3:
      entry.data_offsets = [offs[1], offs[0]];
      what = 'data_offsets swapped';
      break;
    case 4:
      entry.data_offsets = pick([[0], [0, 1, 2], 'x', null, { begin: 0 }, [0, st.data.length + 1]]);
      what = `data_offsets = ${JSON.stringify(entry.data_offsets)}`;
      break;
    case 5: {
      const i = rng.int(0, Math.max(0, shape.length - 1));
      shape[i] = weirdValue(shape[i]);
      entry.shape = shape;
      what = `shape[${i}] = ${JSON.stringify(shape[i])}`;
      break;
    }
    case 6:
      entry.shape = pick([[...shape, 1], [1, ...shape], shape.slice(1), [...shape].reverse(), [], null, 'x', [2 ** 26, 2 ** 26]]);
      what = `shape = ${JSON.stringify(entry.shape)}`;
      break;
    case 7:
      entry.dtype = pick(['F32', 'BF16', 'F16', 'F64', 'I8', 'U8', 'I64', 'BOOL', 'F8_E4M3', 'bf16', 'f32', '', 42, null]);
      what = `dtype = ${JSON.stringify(entry.dtype)}`;
      break;
    case 8:
      delete st.json[name];
      files.set(f, joinSt(st, rng.uniform() < 0.5));
      return `${f}: tensor '${name}' removed from the header`;
    case 9: {
      const to = pick([`${name}x`, pick(names), 'lm_head.weight', 'model.layers.7.mlp.up_proj.weight', '__metadata__', '']);
      delete st.json[name];
      st.json[to] = entry;
      files.set(f, joinSt(st, rng.uniform() < 0.5));
      return `${f}: tensor '${name}' renamed '${to}'`;
    }
    case 10:
      st.json.__metadata__ = pick([5, 'x', [], { format: 7 }, { format: 'pt', n: null }, null]);
      files.set(f, joinSt(st, true));
      return `${f}: __metadata__ = ${JSON.stringify(st.json.__metadata__)}`;
    case 11:
      st.json[name] = pick([null, 7, 'F32', [], { dtype: 'F32' }]);
      files.set(f, joinSt(st, true));
      return `${f}: entry '${name}' = ${JSON.stringify(st.json[name])}`;
    case 12: {
      // A second, empty tensor inside another one's range, and another overlapping tensor after it.
      const b = (offs[0] as number) + 4;
      st.json[`${name}.empty`] = { dtype: 'U8', shape: [0], data_offsets: [b, b] };
      st.json[`${name}.inside`] = { dtype: 'U8', shape: [2], data_offsets: [b + 2, b + 4] };
      files.set(f, joinSt(st, true));
      return `${f}: tensors overlapping '${name}' added (around an empty one)`;
    }
    case 13:
      entry.data_offsets = [offs[0], `@raw:${pick(RAW_TOKENS)}`];
      what = `data_offsets[1] = raw ${JSON.stringify(entry.data_offsets)}`;
      break;
    default:
      entry.extra = weirdValue(0);
      what = 'unknown field added';
  }
  st.json[name] = entry;
  files.set(f, joinSt(st, rng.uniform() < 0.5));
  return `${f}: tensor '${name}': ${what}`;
};

const CONFIG_KEYS = [
  'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
  'head_dim', 'rms_norm_eps', 'rope_theta', 'max_position_embeddings', 'tie_word_embeddings', 'eos_token_id',
  'bos_token_id', 'pad_token_id', 'architectures', 'model_type', 'torch_dtype', 'rope_scaling', 'sliding_window',
  'num_labels', 'id2label', 'hidden_act', 'attention_bias',
];

function corruptText(files: Files, f: string): string {
  const buf = Buffer.from(files.get(f)!);
  if (rng.uniform() < 0.5 && buf.length > 0) {
    const len = rng.int(0, buf.length - 1);
    files.set(f, buf.subarray(0, len));
    return `${f}: truncated to ${len} bytes`;
  }
  const pos = rng.int(0, Math.max(0, buf.length - 1));
  buf[pos] = rng.uniform() < 0.5 ? rng.int(0, 255) : JSON_CHARS.charCodeAt(rng.int(0, JSON_CHARS.length - 1));
  files.set(f, buf);
  return `${f}: byte ${pos} changed`;
}

const editConfig: Mutation = (files) => {
  if (!files.has('config.json')) return 'config.json already gone';
  if (rng.uniform() < 0.15) return corruptText(files, 'config.json');
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(files.get('config.json')!.toString('utf8')) as Record<string, unknown>;
    if (typeof cfg !== 'object' || cfg === null) return 'config.json not an object';
  } catch {
    return 'config.json not editable';
  }
  const key = pick(CONFIG_KEYS);
  let what: string;
  const r = rng.uniform();
  if (r < 0.1) {
    delete cfg[key];
    what = `${key} removed`;
  } else if (r < 0.2 && key === 'rope_scaling') {
    const rs = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 } as Record<string, unknown>;
    const k = pick(Object.keys(rs));
    rs[k] = weirdValue(rs[k]);
    cfg.rope_scaling = rs;
    what = `rope_scaling.${k} = ${JSON.stringify(rs[k])}`;
  } else {
    cfg[key] = weirdValue(cfg[key]);
    what = `${key} = ${JSON.stringify(cfg[key])}`;
  }
  files.set('config.json', Buffer.from(jsonWithRaw(cfg, true)));
  return `config.json: ${what}`;
};

const editIndex: Mutation = (files) => {
  const f = 'model.safetensors.index.json';
  if (!files.has(f)) return editHeaderJson(files);
  if (rng.uniform() < 0.2) return corruptText(files, f);
  let index: { weight_map: Record<string, unknown> } & Record<string, unknown>;
  try {
    index = JSON.parse(files.get(f)!.toString('utf8')) as typeof index;
    if (typeof index.weight_map !== 'object' || index.weight_map === null || Array.isArray(index.weight_map)) return `${f} not editable`;
  } catch {
    return `${f} not editable`;
  }
  const names = Object.keys(index.weight_map);
  if (names.length === 0) return `${f}: empty weight_map`;
  const shards = [...new Set(Object.values(index.weight_map))];
  const name = pick(names);
  let what: string;
  switch (rng.int(0, 5)) {
    case 0:
      index.weight_map[name] = pick(shards);
      what = `weight_map['${name}'] -> ${String(index.weight_map[name])}`;
      break;
    case 1:
      index.weight_map[name] = pick(['../model.safetensors', '/etc/passwd', 'config.json', 'nope.safetensors', '', '.', '..', 42, null, ['a']]);
      what = `weight_map['${name}'] = ${JSON.stringify(index.weight_map[name])}`;
      break;
    case 2:
      delete index.weight_map[name];
      what = `weight_map['${name}'] removed`;
      break;
    case 3:
      index.weight_map[pick(['extra.weight', '__proto__', 'model.layers.9.input_layernorm.weight'])] = pick(shards);
      what = 'weight_map entry added';
      break;
    case 4:
      index.weight_map = pick([[], 'x', null, 5]) as never;
      what = `weight_map = ${JSON.stringify(index.weight_map)}`;
      break;
    default:
      index.metadata = { total_size: weirdValue(0) };
      what = 'metadata.total_size changed';
  }
  files.set(f, Buffer.from(jsonWithRaw(index, true)));
  return `${f}: ${what}`;
};

const removeFile: Mutation = (files) => {
  const f = pick([...files.keys()]);
  files.delete(f);
  return `${f} removed`;
};

/** Marks a file replaced by a folder of the same name (compared by identity). */
const FOLDER = Buffer.from('<folder>');

const fileToFolder: Mutation = (files) => {
  const f = pick([...files.keys()]);
  files.set(f, FOLDER);
  return `${f} is a folder`;
};

const editGeneration: Mutation = (files) => {
  const f = 'generation_config.json';
  if (!files.has(f)) return `${f} already gone`;
  if (rng.uniform() < 0.4) return corruptText(files, f);
  let gen: Record<string, unknown>;
  try {
    gen = JSON.parse(files.get(f)!.toString('utf8')) as Record<string, unknown>;
    if (typeof gen !== 'object' || gen === null) return `${f} not editable`;
  } catch {
    return `${f} not editable`;
  }
  gen.eos_token_id = weirdValue(gen.eos_token_id);
  files.set(f, Buffer.from(jsonWithRaw(gen, true)));
  return `${f}: eos_token_id = ${JSON.stringify(gen.eos_token_id)}`;
};

// Weighted: header and JSON edits are where validation has the most to check.
const MUTATIONS: readonly [Mutation, number][] = [
  [flipHeaderByte, 3], [setHeaderLength, 2], [truncateFile, 2], [extendFile, 1], [flipDataByte, 1],
  [editHeaderJson, 6], [editConfig, 4], [editIndex, 2], [removeFile, 1], [fileToFolder, 0.5], [editGeneration, 1],
];
const TOTAL_WEIGHT = MUTATIONS.reduce((a, [, w]) => a + w, 0);
function randomMutation(): Mutation {
  let r = rng.uniform() * TOTAL_WEIGHT;
  for (const [m, w] of MUTATIONS) {
    r -= w;
    if (r < 0) return m;
  }
  return MUTATIONS[0]![0];
}

// ---- an independent reader for what a successful load must hold ----------------------------

function decode(buf: Buffer, dtype: string, count: number): Float32Array {
  const out = new Float32Array(count);
  const u = new Uint32Array(1);
  const fl = new Float32Array(u.buffer);
  for (let i = 0; i < count; i++) {
    if (dtype === 'F32') out[i] = buf.readFloatLE(i * 4);
    else if (dtype === 'BF16') {
      u[0] = buf.readUInt16LE(i * 2) << 16;
      out[i] = fl[0]!;
    } else {
      const h = buf.readUInt16LE(i * 2);
      const s = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      out[i] = e === 0 ? s * m * 2 ** -24 : e === 0x1f ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  return out;
}

/** The values of tensor `name` as the files hold them, or a reason they are not loadable. */
function expectedTensor(files: Files, name: string, shape: number[]): Float32Array | string {
  let file = 'model.safetensors';
  const index = files.get('model.safetensors.index.json');
  if (index) file = (JSON.parse(index.toString('utf8')) as { weight_map: Record<string, string> }).weight_map[name]!;
  const buf = files.get(file);
  if (!buf) return `no file ${file}`;
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
  const e = header[name];
  if (!e) return `${file} lacks ${name}`;
  if (JSON.stringify(e.shape) !== JSON.stringify(shape)) return `${file}: ${name} shape ${JSON.stringify(e.shape)} != ${JSON.stringify(shape)}`;
  const size = e.dtype === 'F32' ? 4 : e.dtype === 'BF16' || e.dtype === 'F16' ? 2 : 0;
  if (!size) return `${file}: ${name} dtype ${e.dtype}`;
  const count = shape.reduce((a, b) => a * b, 1);
  const [b, end] = e.data_offsets as [number, number];
  if (end - b !== count * size || 8 + n + end > buf.length) return `${file}: ${name} range [${b}, ${end}] wrong`;
  return decode(buf.subarray(8 + n + b, 8 + n + end), e.dtype, count);
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (Number.isNaN(x) ? !Number.isNaN(y) : !Object.is(x, y)) return false;
  }
  return true;
}

// JS errors that mean the loader tripped over its own feet rather than refusing the input.
const INTERNAL = /Cannot read propert|is not a function|is not iterable|undefined \(reading|Maximum call stack|Invalid array length|Array buffer allocation/;

function writeCase(folder: string, files: Files): void {
  mkdirSync(folder, { recursive: true });
  for (const [f, buf] of files) {
    if (buf === FOLDER) mkdirSync(join(folder, f, 'inside'), { recursive: true });
    else writeFileSync(join(folder, f), buf);
  }
}

describe('model loading under random corruption', () => {
  it(`${CASES} mutated checkpoints load consistently or fail naming the file`, async () => {
    const baseRss = process.memoryUsage().rss;
    const baseMaxRss = process.resourceUsage().maxRSS * 1024;
    let loaded = 0;
    let refused = 0;
    let slowest = 0;
    const failures: string[] = [];
    for (let c = 0; c < CASES && failures.length < 5; c++) {
      const base = pick(bases);
      const files: Files = new Map([...base.files].map(([k, v]) => [k, Buffer.from(v)]));
      const steps: string[] = [];
      const count = rng.uniform() < 0.7 ? 1 : rng.int(2, 3);
      for (let k = 0; k < count; k++) steps.push(randomMutation()(files));
      const folder = join(dir, `case-${c}`);
      writeCase(folder, files);
      const what = `case ${c} (${base.label}; ${steps.join('; ')})`;
      const t0 = performance.now();
      try {
        const model = await loadModel(folder);
        try {
          for (const p of model.parameters()) {
            let want: Float32Array | string;
            try {
              want = expectedTensor(files, p.name, p.shape);
            } catch (err) {
              want = `the files do not parse (${(err as Error).message})`;
            }
            if (typeof want === 'string') failures.push(`${what}: loaded, but ${want}`);
            else if (!sameBits(model.parameter(p.name), want)) failures.push(`${what}: loaded '${p.name}' differs from the file`);
          }
        } finally {
          model.free();
        }
        loaded++;
      } catch (err) {
        refused++;
        const msg = err instanceof Error ? err.message : String(err);
        if (process.env.SPPO_FUZZ_VERBOSE) console.log(`${what}\n  -> ${msg}`);
        if (!(err instanceof Error)) failures.push(`${what}: threw a non-Error ${msg}`);
        else if (!msg.includes(folder)) failures.push(`${what}: error does not name the file: ${msg}`);
        else if (INTERNAL.test(msg)) failures.push(`${what}: internal error: ${msg}`);
      }
      slowest = Math.max(slowest, performance.now() - t0);
      rmSync(folder, { recursive: true, force: true });
      const rss = process.memoryUsage().rss;
      if (rss - baseRss > 1.5e9) failures.push(`${what}: resident memory grew by ${((rss - baseRss) / 1e9).toFixed(2)} GB`);
    }
    const peakGrowth = process.resourceUsage().maxRSS * 1024 - baseMaxRss;
    console.log(`model.fuzz: ${loaded} loaded, ${refused} refused, slowest ${slowest.toFixed(0)} ms, peak RSS +${(peakGrowth / 1e6).toFixed(0)} MB`);
    expect(failures).toEqual([]);
    // The tiny checkpoints are ~100 KB: nothing should allocate more than a little.
    expect(peakGrowth).toBeLessThan(1e9);
    // Both outcomes occur (data flips and appended bytes load; most header edits are refused).
    expect(loaded).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(CASES / 2);
  });

  it('refuses absurd sizes in config.json before the core allocates them', async () => {
    for (const [key, value] of [
      ['intermediate_size', 2 ** 20 + rng.int(0, 7) * 2],
      ['vocab_size', 2 ** 24 + rng.int(0, 1000)],
      ['num_hidden_layers', 2 ** 30 + rng.int(0, 1000)],
      ['num_labels', 2 ** 40],
    ] as const) {
      const base = bases.find((b) => b.label.startsWith(key === 'num_labels' ? 'reward' : 'llama3'))!;
      const cfg = JSON.parse(base.files.get('config.json')!.toString('utf8')) as Record<string, unknown>;
      cfg[key] = value;
      const files: Files = new Map(base.files);
      files.set('config.json', Buffer.from(JSON.stringify(cfg)));
      const folder = join(dir, `absurd-${key}`);
      writeCase(folder, files);
      const before = process.resourceUsage().maxRSS * 1024;
      await expect(loadModel(folder), key).rejects.toThrow(folder);
      // Before the check, intermediate_size 2^20 made the core zero-fill ~1.5 GB of weights and grads.
      expect(process.resourceUsage().maxRSS * 1024 - before, key).toBeLessThan(2e8);
    }
  });

  it('finds overlapping tensors even with an empty tensor between them', () => {
    const a = rng.int(16, 64);
    const header = Buffer.from(
      JSON.stringify({
        big: { dtype: 'U8', shape: [a], data_offsets: [0, a] },
        empty: { dtype: 'U8', shape: [0], data_offsets: [2, 2] },
        inside: { dtype: 'U8', shape: [4], data_offsets: [a - 8, a - 4] },
      }),
    );
    expect(() => parseSafetensorsHeader(header, '/x/model.safetensors', 8 + header.length + a)).toThrow(
      "/x/model.safetensors: tensors 'big' and 'inside' overlap",
    );
  });
});
