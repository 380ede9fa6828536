// safetensors headers, read and written in TypeScript (the core only sees byte ranges).
// Format: 8-byte little-endian header length N, N bytes of JSON
//   { "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..} }
// then the data section; offsets are relative to its start. Every field is validated before use.
import { closeSync, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { readJsonFile } from './config.js';

/** Element sizes of every dtype the format defines (for validating byte ranges). */
const DTYPE_SIZES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
  F8_E4M3: 1, F8_E5M2: 1,
};
export type LoadableDtype = 'F32' | 'BF16' | 'F16';
export const LOADABLE_DTYPES: readonly string[] = ['F32', 'BF16', 'F16'];

/** The safetensors reference limits headers to 100 MB; larger is corrupt or hostile. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorEntry {
  name: string;
  file: string;
  dtype: string;
  shape: number[];
  /** Absolute byte offset in the file and byte length. */
  offset: number;
  nbytes: number;
}

export interface SafetensorsHeader {
  file: string;
  fileSize: number;
  dataStart: number;
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string> | null;
}

function readExactly(fd: number, length: number, position: number, file: string): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw new Error(`${file}: unexpected end of file reading the header`);
    done += n;
  }
  return buf;
}

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Reads and validates the header of one .safetensors file. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  let fd: number;
  try {
    // Stat first: opening a FIFO would block, and a folder opens but fails later without its name.
    if (!statSync(file).isFile()) throw new Error('not a regular file');
    fd = openSync(file, 'r');
  } catch (err) {
    throw new Error(`${file}: cannot open (${(err as Error).message})`);
  }
  try {
    const fileSize = fstatSync(fd).size;
    if (fileSize < 8) throw new Error(`${file}: ${fileSize} bytes is too short for a safetensors file (truncated?)`);
    const lenBuf = readExactly(fd, 8, 0, file);
    const headerLength = lenBuf.readBigUInt64LE(0);
    if (headerLength > BigInt(MAX_HEADER_BYTES)) {
      throw new Error(`${file}: header length ${headerLength} is absurd (limit ${MAX_HEADER_BYTES} bytes): corrupt file`);
    }
    const n = Number(headerLength);
    if (n < 2 || 8 + n > fileSize) {
      throw new Error(`${file}: header length ${n} does not fit the file (${fileSize} bytes): truncated or corrupt`);
    }
    const headerBytes = readExactly(fd, n, 8, file);
    return parseSafetensorsHeader(headerBytes, file, fileSize);
  } finally {
    closeSync(fd);
  }
}

/** Validates header JSON bytes of `file` (of `fileSize` bytes; the header starts at byte 8). */
export function parseSafetensorsHeader(headerBytes: Buffer, file: string, fileSize: number): SafetensorsHeader {
  let json: unknown;
  try {
    json = JSON.parse(headerBytes.toString('utf8'));
  } catch (err) {
    throw new Error(`${file}: the header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${file}: the header must be a JSON object`);
  const dataStart = 8 + headerBytes.length;
  const dataSize = fileSize - dataStart;
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> | null = null;
  const ranges: { name: string; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${file}: __metadata__ must be an object`);
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw new Error(`${file}: __metadata__.${k} must be a string`);
      }
      metadata = value as Record<string, string>;
      continue;
    }
    const where = `${file}: tensor '${name}'`;
    if (typeof value !== 'object' || value === null) throw new Error(`${where}: entry must be an object`);
    const { dtype, shape, data_offsets: offs } = value as Record<string, unknown>;
    if (typeof dtype !== 'string' || DTYPE_SIZES[dtype] === undefined) {
      throw new Error(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`${where}: shape must be a list of non-negative integers (got ${JSON.stringify(shape)})`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)) {
      throw new Error(`${where}: data_offsets must be [begin, end] (got ${JSON.stringify(offs)})`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) throw new Error(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataSize) {
      throw new Error(`${where}: data_offsets [${begin}, ${end}] run past the end of the data (${dataSize} bytes): truncated or corrupt file`);
    }
    const numel = numelOf(shape as number[]);
    const want = numel * (DTYPE_SIZES[dtype] as number);
    if (!Number.isSafeInteger(want) || want !== end - begin) {
      throw new Error(`${where}: shape ${JSON.stringify(shape)} x ${dtype} is ${want} bytes but data_offsets cover ${end - begin}`);
    }
    ranges.push({ name, begin, end });
    tensors.set(name, { name, file, dtype, shape: shape as number[], offset: dataStart + begin, nbytes: end - begin });
  }
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  // Compare each range with the furthest-reaching one before it (not just its neighbour, which
  // may be an empty tensor sitting inside a larger one); empty tensors occupy no bytes.
  let reach: { name: string; end: number } | null = null;
  for (const cur of ranges) {
    if (cur.end === cur.begin) continue;
    if (reach && cur.begin < reach.end) {
      throw new Error(`${file}: tensors '${reach.name}' and '${cur.name}' overlap (bytes ${cur.begin}..${Math.min(reach.end, cur.end)})`);
    }
    if (!reach || cur.end > reach.end) reach = cur;
  }
  return { file, fileSize, dataStart, tensors, metadata };
}

export interface Checkpoint {
  folder: string;
  files: string[];
  tensors: Map<string, TensorEntry>;
}

/** Opens model.safetensors, or the shards listed in model.safetensors.index.json, validating all. */
export function openCheckpoint(folder: string): Checkpoint {
  const single = join(folder, 'model.safetensors');
  const indexFile = join(folder, 'model.safetensors.index.json');
  if (existsSync(indexFile)) return openSharded(folder, indexFile);
  if (existsSync(single)) {
    const h = readSafetensorsHeader(single);
    return { folder, files: [single], tensors: h.tensors };
  }
  throw new Error(
    `${folder}: no model.safetensors or model.safetensors.index.json (only safetensors checkpoints are read; pickled .bin files are never loaded)`,
  );
}

function openSharded(folder: string, indexFile: string): Checkpoint {
  const index = readJsonFile(indexFile);
  if (typeof index !== 'object' || index === null || Array.isArray(index)) throw new Error(`${indexFile}: must be a JSON object`);
  const weightMap = (index as Record<string, unknown>).weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new Error(`${indexFile}: field 'weight_map' must be an object of tensor name -> shard file`);
  }
  const headers = new Map<string, SafetensorsHeader>();
  const tensors = new Map<string, TensorEntry>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '' || basename(shard) !== shard || shard === '.' || shard === '..') {
      throw new Error(`${indexFile}: weight_map['${name}'] must be a file name in the folder (got ${JSON.stringify(shard)})`);
    }
    let h = headers.get(shard);
    if (!h) {
      const path = join(folder, shard);
      if (!existsSync(path) || !statSync(path).isFile()) throw new Error(`${indexFile}: shard '${shard}' (for '${name}') does not exist`);
      h = readSafetensorsHeader(path);
      headers.set(shard, h);
    }
    const t = h.tensors.get(name);
    if (!t) throw new Error(`${indexFile}: tensor '${name}' is mapped to '${shard}' but that file does not hold it`);
    tensors.set(name, t);
  }
  return { folder, files: [...headers.values()].map((h) => h.file), tensors };
}

export interface HeaderPlan {
  /** JSON text padded with spaces to a multiple of 8 bytes (as the safetensors writer does). */
  header: string;
  dataBytes: number;
}

/** Builds the header for tensors written back to back in the given order, all in one dtype. */
export function buildSafetensorsHeader(
  tensors: readonly { name: string; shape: readonly number[] }[],
  dtype: LoadableDtype,
  metadata: Record<string, string> | null = { format: 'pt' },
): HeaderPlan {
  const size = DTYPE_SIZES[dtype] as number;
  const obj: Record<string, unknown> = {};
  if (metadata) obj.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || Object.prototype.hasOwnProperty.call(obj, t.name)) {
      throw new Error(`safetensors: duplicate or reserved tensor name '${t.name}'`);
    }
    const nbytes = numelOf(t.shape) * size;
    obj[t.name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + nbytes] };
    offset += nbytes;
  }
  let header = JSON.stringify(obj);
  const len = Buffer.byteLength(header, 'utf8');
  header += ' '.repeat((8 - (len % 8)) % 8);
  return { header, dataBytes: offset };
}

/** Splits tensors in order into shards of at most maxBytes (a larger tensor gets its own shard). */
export function planShards<T extends { shape: readonly number[] }>(tensors: readonly T[], bytesPerElement: number, maxBytes: number): T[][] {
  const shards: T[][] = [];
  let cur: T[] = [];
  let curBytes = 0;
  for (const t of tensors) {
    const b = numelOf(t.shape) * bytesPerElement;
    if (cur.length > 0 && curBytes + b > maxBytes) {
      shards.push(cur);
      cur = [];
      curBytes = 0;
    }
    cur.push(t);
    curBytes += b;
  }
  if (cur.length > 0 || shards.length === 0) shards.push(cur);
  return shards;
}
