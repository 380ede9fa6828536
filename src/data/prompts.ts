// Prompt sets: JSONL, JSON, Parquet, or a Hugging Face dataset folder of Parquet shards. The prompt
// column holds text or a chat-message list (its first user turn is taken). Empty and duplicate
// prompts are dropped and counted. JSON/JSONL bytes that are not UTF-8 are refused (or replaced
// and counted when asked).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, relative } from 'node:path';
import { readParquet } from './parquet.js';

export class PromptFileError extends Error {}

export interface PromptSet {
  prompts: string[];
  source: string;
  rows: number;
  droppedEmpty: number;
  droppedDuplicate: number;
  /** Invalid UTF-8 sequences replaced by U+FFFD (invalidUtf8: 'replace'). */
  replacedInvalidUtf8: number;
}

/** What to do with bytes of a JSON/JSONL prompt file that are not UTF-8. */
export type InvalidUtf8 = 'refuse' | 'replace';

/**
 * The text of a JSON/JSONL file. Bytes that are not UTF-8 are refused with the line and byte they
 * are at, or (`replace`) replaced by U+FFFD and counted, never silently.
 */
export function decodeUtf8File(file: string, bytes: Buffer, mode: InvalidUtf8): { text: string; replaced: number } {
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes), replaced: 0 };
  } catch {
    // Not UTF-8: find where, or count the replacements.
  }
  const lossy = new TextDecoder('utf-8').decode(bytes);
  if (mode === 'replace') {
    // Each U+FFFD that the file did not itself hold (as EF BF BD) is a replacement.
    const own = bytes.toString('latin1').split('\xef\xbf\xbd').length - 1;
    const all = lossy.split('\ufffd').length - 1;
    return { text: lossy, replaced: all - own };
  }
  const bad = firstInvalidByte(bytes);
  let line = 1;
  for (let i = 0; i < bad; i++) if (bytes[i] === 0x0a) line++;
  throw new PromptFileError(
    `${file}:${line}: not valid UTF-8 (byte 0x${(bytes[bad] ?? 0).toString(16).padStart(2, '0')} at byte offset ${bad}); ` +
      'save the file as UTF-8, or pass --prompt-invalid-utf8 replace (recipe: promptInvalidUtf8) to replace invalid bytes with U+FFFD',
  );
}

/** Offset of the first byte that does not start a valid UTF-8 sequence (bytes.length when none). */
function firstInvalidByte(bytes: Uint8Array): number {
  const strict = new TextDecoder('utf-8', { fatal: true });
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    const len = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (len === 0 || i + len > bytes.length) return i;
    if (len > 1) {
      try {
        strict.decode(bytes.subarray(i, i + len));
      } catch {
        return i;
      }
    }
    i += len;
  }
  return bytes.length;
}


function promptText(value: unknown, where: string, column: string): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    // A chat: the user turn is the prompt (the reference's `prompt` column is plain text, but
    // UltraFeedback-style sets also ship `messages`/`chosen` lists).
    for (const m of value) {
      if (m && typeof m === 'object' && (m as { role?: unknown }).role === 'user') {
        const c = (m as { content?: unknown }).content;
        if (typeof c === 'string') return c;
      }
    }
    throw new PromptFileError(`${where}: column '${column}' holds a message list with no user turn with string content`);
  }
  throw new PromptFileError(`${where}: column '${column}' must hold text or a chat-message list (got ${typeof value})`);
}

function rowsFromJson(file: string, text: string): Record<string, unknown>[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new PromptFileError(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  // Either a list of rows, or {"data": [...]}, or a column-oriented {"prompt": [...]}.
  if (Array.isArray(data)) return data as Record<string, unknown>[];
  if (data && typeof data === 'object') {
    const obj = data as Record<string, unknown>;
    if (Array.isArray(obj.data)) return obj.data as Record<string, unknown>[];
    const cols = Object.entries(obj).filter(([, v]) => Array.isArray(v)) as [string, unknown[]][];
    if (cols.length > 0 && cols.length === Object.keys(obj).length) {
      const [first, n] = [cols[0]![0], cols[0]![1].length];
      // Ragged columns have no row structure; reading n rows would silently drop or pad values.
      const ragged = cols.find(([, v]) => v.length !== n);
      if (ragged) throw new PromptFileError(`${file}: column '${ragged[0]}' has ${ragged[1].length} values but column '${first}' has ${n}`);
      return Array.from({ length: n }, (_, i) => Object.fromEntries(cols.map(([k, v]) => [k, v[i]])));
    }
  }
  throw new PromptFileError(`${file}: expected a JSON list of rows, {"data": [...]}, or an object of columns`);
}

function rowsFromJsonl(file: string, text: string): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    try {
      rows.push(JSON.parse(line) as Record<string, unknown>);
    } catch (err) {
      throw new PromptFileError(`${file}:${i + 1}: not valid JSON (${(err as Error).message})`);
    }
  }
  return rows;
}

/**
 * The split a shard of a Hugging Face dataset folder belongs to: `<split>-00000-of-00002.parquet`,
 * `<split>/0000.parquet` (the parquet-converter layout), or `data/<split>.parquet`.
 */
export function shardSplit(folder: string, shard: string): string {
  const name = basename(shard);
  const numbered = /^(.+?)-\d+-of-\d+\.parquet$/.exec(name);
  if (numbered) return numbered[1]!;
  const parent = relative(folder, dirname(shard));
  const dir = basename(parent);
  if (parent !== '' && dir !== 'data') return dir;
  // `train.parquet`, `train-1.parquet`; bare numbers (`0000.parquet`) name no split.
  const stem = name.replace(/\.parquet$/, '').replace(/[-_]\d+$/, '');
  return /^\d+$/.test(stem) ? 'default' : stem;
}

/** The shards of `folder` grouped by split, in a stable order. */
export function datasetSplits(folder: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const s of parquetShards(folder)) {
    const split = shardSplit(folder, s);
    out.set(split, [...(out.get(split) ?? []), s]);
  }
  return out;
}

/**
 * The shards to read from a dataset folder: the asked split; with none asked, the only split or
 * `train` when there are several. Never a mix of splits (that would train on the test set).
 */
export function selectSplitShards(folder: string, splitName: string | null | undefined): { split: string; shards: string[] } {
  const splits = datasetSplits(folder);
  if (splits.size === 0) throw new PromptFileError(`prompt folder ${folder} has no .parquet files (a Hugging Face dataset folder holds Parquet shards)`);
  const names = [...splits.keys()];
  const want = splitName ?? (splits.size === 1 ? names[0]! : 'train');
  const shards = splits.get(want);
  if (!shards) {
    throw new PromptFileError(
      `prompt folder ${folder} has no split '${want}'${splitName ? '' : ` (the default when a folder has several splits)`}; ` +
        `its splits: ${names.join(', ')}; choose one with --prompt-split-name (recipe: promptSplitName)`,
    );
  }
  return { split: want, shards };
}

/** The Parquet shards of a dataset folder, in a stable order (splits' files sorted by path). */
export function parquetShards(folder: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      if (name.startsWith('.')) continue;
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.parquet')) out.push(p);
    }
  };
  walk(folder);
  return out;
}

interface RawTable {
  columns: string[];
  rows: Record<string, unknown>[];
  /** Invalid UTF-8 sequences replaced (JSON/JSONL only). */
  replaced?: number;
}

async function readTable(file: string, splitName: string | null, invalidUtf8: InvalidUtf8): Promise<RawTable> {
  if (!existsSync(file)) throw new PromptFileError(`prompt file ${file} does not exist`);
  const st = statSync(file);
  if (!st.isDirectory() && splitName !== null) {
    throw new PromptFileError(`prompt file ${file}: a split name ('${splitName}') applies to dataset folders only; leave --prompt-split-name unset for a file`);
  }
  if (st.isDirectory()) {
    const { shards } = selectSplitShards(file, splitName);
    const tables: RawTable[] = [];
    for (const s of shards) tables.push(await readParquet(s));
    const columns = tables[0]!.columns;
    for (let i = 1; i < tables.length; i++) {
      const missing = columns.filter((c) => !tables[i]!.columns.includes(c));
      if (missing.length) throw new PromptFileError(`${relative(file, shards[i]!)} in ${file} lacks columns ${missing.join(', ')} that other shards have`);
    }
    return { columns, rows: tables.flatMap((t) => t.rows) };
  }
  const ext = extname(file).toLowerCase();
  if (ext === '.parquet') return readParquet(file);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new PromptFileError(`cannot read prompt file ${file}: ${(err as Error).message}`);
  }
  if (ext !== '.jsonl' && ext !== '.ndjson' && ext !== '.json') {
    throw new PromptFileError(`prompt file ${file}: unknown format '${ext || '(no extension)'}' (use .jsonl, .json, .parquet or a folder of Parquet shards)`);
  }
  const { text, replaced } = decodeUtf8File(file, bytes, invalidUtf8);
  const rows = ext === '.json' ? rowsFromJson(file, text) : rowsFromJsonl(file, text);
  const columns = [...new Set(rows.flatMap((r) => (r && typeof r === 'object' ? Object.keys(r) : [])))];
  return { columns, rows, replaced };
}

export interface LoadPromptsOptions {
  /** Dataset folders: the split to read (default: the only one, or `train`). */
  splitName?: string | null;
  /** JSON/JSONL bytes that are not UTF-8 (default: refuse the file). */
  invalidUtf8?: InvalidUtf8;
}

export async function loadPrompts(file: string, column = 'prompt', opts: LoadPromptsOptions = {}): Promise<PromptSet> {
  const table = await readTable(file, opts.splitName ?? null, opts.invalidUtf8 ?? 'refuse');
  if (table.rows.length === 0) throw new PromptFileError(`prompt file ${file} has no rows`);
  if (!table.columns.includes(column)) {
    throw new PromptFileError(
      `prompt file ${file} has no column '${column}' (columns: ${table.columns.join(', ') || 'none'}); choose one with --prompt-column`,
    );
  }
  const seen = new Set<string>();
  const prompts: string[] = [];
  let droppedEmpty = 0;
  let droppedDuplicate = 0;
  table.rows.forEach((row, i) => {
    if (row === null || typeof row !== 'object' || Array.isArray(row)) {
      throw new PromptFileError(`${file}: row ${i + 1} is not an object`);
    }
    const text = promptText(row[column], `${file}: row ${i + 1}`, column);
    if (text === null || text.trim() === '') {
      droppedEmpty++;
      return;
    }
    if (seen.has(text)) {
      droppedDuplicate++;
      return;
    }
    seen.add(text);
    prompts.push(text);
  });
  if (prompts.length === 0) {
    throw new PromptFileError(`prompt file ${file} has no usable prompts in column '${column}' (${droppedEmpty} empty, ${droppedDuplicate} duplicate rows dropped)`);
  }
  return { prompts, source: file, rows: table.rows.length, droppedEmpty, droppedDuplicate, replacedInvalidUtf8: table.replaced ?? 0 };
}
