// safetensors headers: well-formed files parse to the right byte ranges; every malformation is
// a clear error naming the file (and tensor), never a crash or a silent misread.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bf16ToF32, encodeSafetensors, f16ToF32, f32ToBf16, f32ToF16 } from '../src/model/encode.js';
import { buildSafetensorsHeader, MAX_HEADER_BYTES, openCheckpoint, planShards, readSafetensorsHeader } from '../src/model/safetensors.js';
import { writeTinyCheckpoint } from './helpers/tinyModels.js';

const dir = mkdtempSync(join(tmpdir(), 'sppo-st-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = (name = 'model.safetensors'): string => join(dir, `${n++}-${name}`);

/** A raw file from a header object (serialised as is) and `dataBytes` bytes of random data. */
function rawFile(header: unknown, dataBytes: number, opts: { lengthField?: bigint } = {}): string {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const buf = Buffer.alloc(8 + h.length + dataBytes);
  buf.writeBigUInt64LE(opts.lengthField ?? BigInt(h.length), 0);
  h.copy(buf, 8);
  for (let i = 8 + h.length; i < buf.length; i++) buf[i] = Math.floor(Math.random() * 256);
  const f = fresh();
  writeFileSync(f, buf);
  return f;
}

function randomTensor(shape: number[]): Float32Array {
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.random() * 4 - 2);
}

describe('safetensors headers', () => {
  it('parses what encodeSafetensors writes, for F32, BF16 and F16', () => {
    for (const dtype of ['F32', 'BF16', 'F16'] as const) {
      const shapes = [[3, 5], [7], [2, 2, 2], [0, 4]];
      const tensors = shapes.map((shape, i) => ({ name: `t${i}`, shape, data: randomTensor(shape) }));
      const file = fresh();
      const bytes = encodeSafetensors(tensors, dtype, { format: 'pt', note: 'x' });
      writeFileSync(file, bytes);
      const h = readSafetensorsHeader(file);
      expect(h.metadata).toEqual({ format: 'pt', note: 'x' });
      expect((h.dataStart - 8) % 8).toBe(0);
      const size = dtype === 'F32' ? 4 : 2;
      for (const t of tensors) {
        const e = h.tensors.get(t.name)!;
        expect(e).toMatchObject({ dtype, shape: t.shape, nbytes: t.data.length * size });
        for (let i = 0; i < t.data.length; i++) {
          const want = t.data[i]!;
          const got =
            dtype === 'F32' ? bytes.readFloatLE(e.offset + 4 * i)
            : dtype === 'BF16' ? bf16ToF32(bytes.readUInt16LE(e.offset + 2 * i))
            : f16ToF32(bytes.readUInt16LE(e.offset + 2 * i));
          const tol = dtype === 'F32' ? 0 : dtype === 'BF16' ? 2 ** -8 : 2 ** -11;
          expect(Math.abs(got - want)).toBeLessThanOrEqual(tol * Math.abs(want) + 1e-30);
        }
      }
    }
  });

  it('rounds like the core: bf16 and f16 to nearest even', () => {
    for (let i = 0; i < 1000; i++) {
      const x = (Math.random() - 0.5) * 10 ** (Math.random() * 8 - 4);
      const b = bf16ToF32(f32ToBf16(x));
      expect(Math.abs(b - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -8);
      const h = f16ToF32(f32ToF16(x));
      if (Math.abs(x) > 6.2e-5 && Math.abs(x) < 65000) expect(Math.abs(h - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -11);
    }
  });

  const entry = (dtype: string, shape: number[], begin: number, end: number) => ({ dtype, shape, data_offsets: [begin, end] });

  it('refuses a truncated file (data shorter than the header says)', () => {
    const f = rawFile({ a: entry('F32', [4, 4], 0, 64) }, 40);
    expect(() => readSafetensorsHeader(f)).toThrow(new RegExp(`${f}: tensor 'a': data_offsets \\[0, 64\\] run past the end`));
  });

  it('refuses offsets past the end of the file', () => {
    const f = rawFile({ a: entry('F32', [2], 1000, 1008) }, 16);
    expect(() => readSafetensorsHeader(f)).toThrow(/tensor 'a'.*past the end.*truncated or corrupt/);
  });

  it('refuses an absurd header length', () => {
    const f = rawFile({ a: entry('F32', [1], 0, 4) }, 4, { lengthField: 2n ** 62n });
    expect(() => readSafetensorsHeader(f)).toThrow(/header length \d+ is absurd/);
    const g = rawFile({ a: entry('F32', [1], 0, 4) }, 4, { lengthField: BigInt(MAX_HEADER_BYTES - 1) });
    expect(() => readSafetensorsHeader(g)).toThrow(/does not fit the file/);
  });

  it('refuses a file shorter than the length field', () => {
    const f = fresh();
    writeFileSync(f, Buffer.from([1, 2, 3]));
    expect(() => readSafetensorsHeader(f)).toThrow(/too short for a safetensors file/);
  });

  it('refuses a header that is not JSON or not an object', () => {
    expect(() => readSafetensorsHeader(rawFile('{"a": {"dtype": "F32", ', 8))).toThrow(/header is not valid JSON/);
    expect(() => readSafetensorsHeader(rawFile('[1,2,3]', 8))).toThrow(/header must be a JSON object/);
  });

  it('refuses a bad dtype', () => {
    const f = rawFile({ w: entry('Q4_K', [2], 0, 2) }, 8);
    expect(() => readSafetensorsHeader(f)).toThrow(/tensor 'w': unknown dtype "Q4_K"/);
  });

  it('refuses shape x dtype disagreeing with the byte range', () => {
    const f = rawFile({ w: entry('BF16', [3, 3], 0, 36) }, 64);
    expect(() => readSafetensorsHeader(f)).toThrow(/tensor 'w': shape \[3,3\] x BF16 is 18 bytes but data_offsets cover 36/);
  });

  it('refuses overlapping ranges', () => {
    const f = rawFile({ a: entry('F32', [4], 0, 16), b: entry('F32', [4], 8, 24) }, 32);
    expect(() => readSafetensorsHeader(f)).toThrow(/tensors 'a' and 'b' overlap/);
  });

  it('refuses malformed entries', () => {
    expect(() => readSafetensorsHeader(rawFile({ a: entry('F32', [-1], 0, 4) }, 8))).toThrow(/tensor 'a': shape must be/);
    expect(() => readSafetensorsHeader(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4] } }, 8))).toThrow(/data_offsets must be \[begin, end\]/);
    expect(() => readSafetensorsHeader(rawFile({ a: entry('F32', [1], 8, 4) }, 8))).toThrow(/end before they begin/);
    expect(() => readSafetensorsHeader(rawFile({ __metadata__: { a: 1 } }, 0))).toThrow(/__metadata__.a must be a string/);
  });
});

describe('checkpoint folders', () => {
  it('opens a single file and a sharded folder to the same tensors', () => {
    const seed = Math.floor(Math.random() * 1e9);
    const one = writeTinyCheckpoint(join(dir, `one-${seed}`), 'llama2', seed);
    const many = writeTinyCheckpoint(join(dir, `many-${seed}`), 'llama2', seed, { maxShardBytes: 20_000 });
    const a = openCheckpoint(one.folder);
    const b = openCheckpoint(many.folder);
    expect(a.files).toHaveLength(1);
    expect(b.files.length).toBeGreaterThan(2);
    expect([...b.tensors.keys()].sort()).toEqual([...a.tensors.keys()].sort());
    for (const [name, t] of a.tensors) expect(b.tensors.get(name)).toMatchObject({ dtype: t.dtype, shape: t.shape, nbytes: t.nbytes });
    const index = JSON.parse(readFileSync(join(many.folder, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata.total_size).toBe([...a.tensors.values()].reduce((s, t) => s + t.nbytes, 0));
  });

  it('validates the weight_map: missing shard, tensor not in its shard, paths outside the folder', () => {
    const seed = Math.floor(Math.random() * 1e9);
    const ck = writeTinyCheckpoint(join(dir, `idx-${seed}`), 'llama2', seed, { maxShardBytes: 20_000 });
    const indexFile = join(ck.folder, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexFile, 'utf8'));
    const names = Object.keys(index.weight_map);
    const write = (wm: Record<string, string>) => writeFileSync(indexFile, JSON.stringify({ metadata: {}, weight_map: wm }));

    write({ ...index.weight_map, [names[0]!]: 'model-00009-of-00009.safetensors' });
    expect(() => openCheckpoint(ck.folder)).toThrow(/shard 'model-00009-of-00009.safetensors' .* does not exist/);
    const other = Object.values(index.weight_map as Record<string, string>).find((f) => f !== index.weight_map[names[0]!])!;
    write({ ...index.weight_map, [names[0]!]: other });
    expect(() => openCheckpoint(ck.folder)).toThrow(new RegExp(`tensor '${names[0]!.replace(/\./g, '\\.')}' is mapped to '${other}' but that file does not hold it`));
    write({ ...index.weight_map, [names[0]!]: '../../etc/passwd' });
    expect(() => openCheckpoint(ck.folder)).toThrow(/must be a file name in the folder/);
    writeFileSync(indexFile, JSON.stringify({ weight_map: [1] }));
    expect(() => openCheckpoint(ck.folder)).toThrow(/'weight_map' must be an object/);
  });

  it('refuses a folder without safetensors, saying pickles are not read', () => {
    const empty = join(dir, 'empty');
    writeFileSync(join(dir, 'pytorch_model.bin'), 'x');
    expect(() => openCheckpoint(empty)).toThrow(/no model.safetensors.*never loaded/);
  });

  it('plans shards in order under the limit', () => {
    const ts = Array.from({ length: 20 }, (_, i) => ({ name: `t${i}`, shape: [1 + Math.floor(Math.random() * 50)] }));
    const max = 100 + Math.floor(Math.random() * 100);
    const shards = planShards(ts, 4, max);
    expect(shards.flat().map((t) => t.name)).toEqual(ts.map((t) => t.name));
    for (const s of shards) {
      const bytes = s.reduce((a, t) => a + t.shape[0]! * 4, 0);
      expect(s.length === 1 || bytes <= max).toBe(true);
    }
    expect(buildSafetensorsHeader([{ name: 'a', shape: [1] }], 'F32').header.length % 8).toBe(0);
  });
});
