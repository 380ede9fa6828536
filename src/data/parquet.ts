// Parquet tables of the pipeline (generated, judged, train) with typed columns, written with
// hyparquet-writer and read with hyparquet. Message lists and matrices are real nested Parquet
// types (list<struct<content, role>>, list<list<double>>), as the reference pipeline's pandas
// tables, so other tools read them unchanged.
import { readFileSync } from 'node:fs';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { parquetMetadata, parquetReadObjects, parquetSchema } from 'hyparquet';
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

function toArrayBuffer(buf: Buffer): ArrayBuffer {
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
}

function normalize(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(normalize);
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array) && !(v instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = normalize(x);
    return out;
  }
  return v;
}

export interface ParquetTable {
  columns: string[];
  rows: Record<string, unknown>[];
}

/** Reads a whole Parquet file into row objects (bigints become numbers). */
export async function readParquet(file: string): Promise<ParquetTable> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read Parquet file ${file}: ${(err as Error).message}`);
  }
  const ab = toArrayBuffer(bytes);
  let columns: string[];
  let rows: Record<string, unknown>[];
  try {
    const metadata = parquetMetadata(ab);
    columns = parquetSchema(metadata).children.map((c) => c.element.name);
    rows = (await parquetReadObjects({ file: ab, metadata })) as Record<string, unknown>[];
  } catch (err) {
    throw new Error(`${file} is not a readable Parquet file: ${(err as Error).message}`);
  }
  return { columns, rows: rows.map((r) => normalize(r) as Record<string, unknown>) };
}
