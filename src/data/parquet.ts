// Parquet tables of the pipeline (generated, judged, train) with typed columns, written with
// hyparquet-writer and read with hyparquet. Message lists and matrices are real nested Parquet
// types (list<struct<content, role>>, list<list<double>>), as the reference pipeline's pandas
// tables, so other tools read them unchanged.
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { writeFileAtomic } from '../run/atomic.js';

export interface Message {
  role: string;
  content: string;
}

export type ColumnKind = 'string' | 'int' | 'double' | 'messages' | 'doubles' | 'ints' | 'matrix';

export interface ColumnSpec {
  name: string;
  kind: ColumnKind;
  data: unknown[];
}

type SchemaElement = Record<string, unknown>;

function listOf(name: string, element: SchemaElement[]): SchemaElement[] {
  return [
    { name, repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
    { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
    ...element,
  ];
}

function schemaFor(col: ColumnSpec): SchemaElement[] {
  switch (col.kind) {
    case 'string':
      return [{ name: col.name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' }];
    case 'int':
      return [{ name: col.name, type: 'INT64', repetition_type: 'OPTIONAL' }];
    case 'double':
      return [{ name: col.name, type: 'DOUBLE', repetition_type: 'OPTIONAL' }];
    case 'doubles':
      return listOf(col.name, [{ name: 'element', type: 'DOUBLE', repetition_type: 'OPTIONAL' }]);
    case 'ints':
      return listOf(col.name, [{ name: 'element', type: 'INT64', repetition_type: 'OPTIONAL' }]);
    case 'matrix':
      return listOf(col.name, listOf('element', [{ name: 'element', type: 'DOUBLE', repetition_type: 'OPTIONAL' }]));
    case 'messages':
      return listOf(col.name, [
        { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
        { name: 'content', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
        { name: 'role', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      ]);
  }
}

function prepare(col: ColumnSpec): unknown[] {
  // INT64 columns take bigints.
  if (col.kind === 'int') return col.data.map((v) => (v === null || v === undefined ? null : BigInt(v as number)));
  if (col.kind === 'ints') return col.data.map((v) => (v === null || v === undefined ? null : (v as number[]).map((x) => BigInt(x))));
  if (col.kind === 'messages') {
    // Field order must follow the schema (content, role).
    return col.data.map((v) => (v === null || v === undefined ? null : (v as Message[]).map((m) => ({ content: m.content, role: m.role }))));
  }
  return col.data;
}

export function tableToParquet(columns: ColumnSpec[]): Uint8Array {
  const rows = columns[0]?.data.length ?? 0;
  for (const c of columns) {
    if (c.data.length !== rows) throw new Error(`parquet column ${c.name} has ${c.data.length} rows, expected ${rows}`);
  }
  const schema = [{ name: 'root', num_children: columns.length }, ...columns.flatMap(schemaFor)];
  const buf = parquetWriteBuffer({
    columnData: columns.map((c) => ({ name: c.name, data: prepare(c) as never })),
    schema: schema as never,
    // No statistics: values are not needed for pruning, and the bytes stay deterministic.
    statistics: false,
  });
  return new Uint8Array(buf);
}

/** Writes a table atomically (temp + fsync + rename). */
export function writeParquet(file: string, columns: ColumnSpec[]): void {
  writeFileAtomic(file, tableToParquet(columns));
}

export interface ParquetTable {
  columns: string[];
  rows: Record<string, unknown>[];
}

/**
 * Limits on reading one Parquet file. The decoder (hyparquet) trusts sizes inside the file, so a
 * corrupt or hostile file can make it loop for minutes over billions of values, exhaust memory,
 * or leave rejected promises behind; it therefore runs in a worker thread that is stopped at a
 * deadline (base + per MiB of file) and whose heap is capped (maxHeapMb applies to new workers).
 */
export const parquetReadLimits = { baseTimeoutMs: 30_000, timeoutMsPerMiB: 1_000, maxHeapMb: 4096 };

// The worker: reads the file, decodes every row, turns bigints into numbers, posts the table.
// Stray rejections from a failed decode are swallowed: the failure was already reported.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
process.on('unhandledRejection', () => {});
const normalize = (v) => {
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(normalize);
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array) && !(v instanceof Date)) {
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = normalize(x);
    return out;
  }
  return v;
};
const lib = import(workerData.hyparquet);
parentPort.on('message', async ({ file }) => {
  try {
    const { parquetMetadata, parquetReadObjects, parquetSchema } = await lib;
    let bytes;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      parentPort.postMessage({ readError: err.message });
      return;
    }
    const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const metadata = parquetMetadata(ab);
    const columns = parquetSchema(metadata).children.map((c) => c.element.name);
    const rows = await parquetReadObjects({ file: ab, metadata });
    parentPort.postMessage({ columns, rows: rows.map(normalize) });
  } catch (err) {
    parentPort.postMessage({ error: String((err && err.message) || err) });
  }
});
`;

type WorkerReply = { columns: string[]; rows: Record<string, unknown>[] } | { error: string } | { readError: string };

let worker: Worker | null = null;
let queue: Promise<unknown> = Promise.resolve();

function spawnWorker(): Worker {
  const hyparquet = pathToFileURL(createRequire(import.meta.url).resolve('hyparquet')).href;
  const w = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { hyparquet },
    resourceLimits: { maxOldGenerationSizeMb: parquetReadLimits.maxHeapMb },
  });
  w.unref(); // an idle reader never keeps the process alive
  // A reader that fails between reads is dropped (the next read starts a fresh one).
  const drop = (): void => {
    if (worker === w) worker = null;
  };
  w.on('error', drop).on('exit', drop);
  return w;
}

/** What a decoder error means for the user; the decoder's own words follow in parentheses. */
function parquetTrouble(why: string): string {
  if (/took longer|reader stopped/.test(why)) return why;
  const kind = /PAR1|footer|magic|too short/i.test(why)
    ? 'it does not end in a Parquet footer (a truncated file, or not Parquet at all)'
    : 'its metadata or data pages are corrupt (a damaged or truncated file, or not Parquet)';
  return `${kind} (decoder: ${why})`;
}

function readInWorker(file: string, bytes: number): Promise<ParquetTable> {
  const w = (worker ??= spawnWorker());
  const ms = parquetReadLimits.baseTimeoutMs + (parquetReadLimits.timeoutMsPerMiB * bytes) / 2 ** 20;
  const bad = (why: string): Error => new Error(`${file} is not a readable Parquet file: ${parquetTrouble(why)}`);
  return new Promise<ParquetTable>((resolve, reject) => {
    const discard = (): void => {
      if (worker === w) worker = null;
      void w.terminate();
    };
    const finish = (settle: () => void): void => {
      clearTimeout(timer);
      w.off('message', onMessage).off('error', onError).off('exit', onExit);
      w.unref();
      settle();
    };
    const onMessage = (m: WorkerReply): void =>
      finish(() => {
        if ('readError' in m) reject(new Error(`cannot read Parquet file ${file}: ${m.readError}`));
        else if ('error' in m) reject(bad(m.error));
        else resolve(m);
      });
    const onError = (err: Error): void => {
      discard();
      finish(() => reject(bad(err.message)));
    };
    const onExit = (code: number): void => {
      discard();
      finish(() => reject(bad(`the reader stopped (exit code ${code})`)));
    };
    const timer = setTimeout(() => {
      discard();
      finish(() => reject(bad(`decoding took longer than ${Math.round(ms)} ms (corrupt sizes?)`)));
    }, ms);
    w.on('message', onMessage).on('error', onError).on('exit', onExit);
    w.ref();
    w.postMessage({ file });
  });
}

/** Reads a whole Parquet file into row objects (bigints become numbers). */
export async function readParquet(file: string): Promise<ParquetTable> {
  let bytes: number;
  try {
    bytes = statSync(file).size;
  } catch (err) {
    throw new Error(`cannot read Parquet file ${file}: ${(err as Error).message}`);
  }
  // One file at a time through the one worker.
  const run = queue.then(() => readInWorker(file, bytes));
  queue = run.catch(() => undefined);
  return run;
}
