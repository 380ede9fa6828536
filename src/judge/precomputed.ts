// `precomputed:<file>[?tau=1]`: judgments made elsewhere, read from JSONL, JSON (an array of
// records) or Parquet. Each record gives
//   a key:       `prompt` (the user text, or a chat message list whose first user turn is used)
//                and/or `index` (the prompt's row index in this iteration's prompt set);
//   a judgment:  `probability` (K x K) and/or `scores` (or `rm_scores`, the reference column);
//                scores alone give P_ij = sigma((s_i - s_j)/tau);
//   optionally:  `responses` (strings) or `generate_0`..`generate_{K-1}` (reference message
//                lists); when present they must equal the responses being judged, which catches a
//                file made for another rollout.
// So the reference pipeline's generated train.parquet (prompt, generate_i, probability, rm_scores)
// and sppo-native's judged.parquet load unchanged. Lookups use `index` when both sides have it,
// else the prompt text.
import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { asyncBufferFromFile, parquetReadObjects } from 'hyparquet';
import type { Judge, JudgeInput, Judgment } from './types.js';
import { validateBatch } from './input.js';
import { checkOptions, positiveOption, type JudgeSpec } from './spec.js';
import { describe, matrixFromScores, validateMatrix, validateScores } from './matrix.js';

interface Entry {
  where: string; // "line 3" / "row 2" for error messages
  prompt: string | null;
  index: number | null;
  probability: number[][] | null;
  scores: number[] | null;
  responses: string[] | null;
}

const clip = (s: string) => JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);

/** Parquet gives BigInt for int64 and typed arrays for some lists; make plain JSON-like values. */
function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as unknown as ArrayLike<number>, plain);
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

function messageText(v: unknown, role: 'user' | 'assistant'): string | null {
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) return null;
  const m = v.find((x) => typeof x === 'object' && x !== null && (x as { role?: unknown }).role === role) as { content?: unknown } | undefined;
  return m && typeof m.content === 'string' ? m.content : null;
}

function toEntry(rec: unknown, where: string, file: string): Entry {
  const what = `precomputed judge file ${file}, ${where}`;
  if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) throw new Error(`${what}: expected an object (got ${describe(rec)})`);
  const r = rec as Record<string, unknown>;
  const e: Entry = { where, prompt: null, index: null, probability: null, scores: null, responses: null };
  if (r.prompt !== undefined && r.prompt !== null) {
    e.prompt = messageText(r.prompt, 'user');
    if (e.prompt === null) throw new Error(`${what}: prompt must be a string or a message list with a user turn (got ${describe(r.prompt)})`);
  }
  if (r.index !== undefined && r.index !== null) {
    const i = plain(r.index);
    if (typeof i !== 'number' || !Number.isInteger(i) || i < 0) throw new Error(`${what}: index must be a non-negative integer (got ${describe(i)})`);
    e.index = i;
  }
  if (e.prompt === null && e.index === null) throw new Error(`${what}: needs a "prompt" or an "index" to key it`);
  const scores = plain(r.scores ?? r.rm_scores);
  if (scores !== undefined && scores !== null) {
    validateScores(scores, what);
    e.scores = scores;
  }
  const prob = plain(r.probability);
  if (prob !== undefined && prob !== null) {
    validateMatrix(prob, what);
    e.probability = prob;
  }
  if (!e.scores && !e.probability) throw new Error(`${what}: has neither "probability" nor "scores"/"rm_scores"`);
  if (e.scores && e.probability && e.scores.length !== e.probability.length) {
    throw new Error(`${what}: ${e.scores.length} scores but a ${e.probability.length}x${e.probability.length} probability matrix`);
  }
  if (Array.isArray(r.responses)) {
    e.responses = r.responses.map((x, i) => {
      if (typeof x !== 'string') throw new Error(`${what}: responses[${i}] must be a string (got ${describe(x)})`);
      return x;
    });
  } else if (r.generate_0 !== undefined) {
    const out: string[] = [];
    for (let i = 0; r[`generate_${i}`] !== undefined; i++) {
      const t = messageText(plain(r[`generate_${i}`]), 'assistant');
      if (t === null) throw new Error(`${what}: generate_${i} must be a string or a message list with an assistant turn`);
      out.push(t);
    }
    e.responses = out;
  }
  return e;
}

async function readRecords(file: string): Promise<{ rec: unknown; where: string }[]> {
  const ext = extname(file).toLowerCase();
  if (ext === '.parquet') {
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({ file: await asyncBufferFromFile(file) });
    } catch (e) {
      throw new Error(`precomputed judge file ${file} could not be read as Parquet: ${(e as Error).message}`);
    }
    return rows.map((rec, i) => ({ rec, where: `row ${i}` }));
  }
  if (ext !== '.jsonl' && ext !== '.json') {
    throw new Error(`precomputed judge file ${file}: unsupported extension '${ext}' (use .jsonl, .json or .parquet)`);
  }
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`precomputed judge file ${file} could not be read: ${(e as Error).message}`);
  }
  if (ext === '.json') {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new Error(`precomputed judge file ${file} is not valid JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(data)) throw new Error(`precomputed judge file ${file}: a .json file must hold an array of records`);
    return data.map((rec, i) => ({ rec, where: `record ${i}` }));
  }
  const out: { rec: unknown; where: string }[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push({ rec: JSON.parse(line), where: `line ${i + 1}` });
    } catch (e) {
      throw new Error(`precomputed judge file ${file}, line ${i + 1} is not valid JSON: ${(e as Error).message}`);
    }
  });
  return out;
}

export async function createPrecomputedJudge(s: JudgeSpec, cwd = process.cwd()): Promise<Judge> {
  checkOptions(s, ['tau']);
  const tau = positiveOption(s, 'tau', 1);
  const file = resolve(cwd, s.target);
  const entries = (await readRecords(file)).map(({ rec, where }) => toEntry(rec, where, file));
  if (entries.length === 0) throw new Error(`precomputed judge file ${file} holds no records`);
  const byIndex = new Map<number, Entry>();
  const byPrompt = new Map<string, Entry[]>();
  for (const e of entries) {
    if (e.index !== null) {
      const prev = byIndex.get(e.index);
      if (prev) throw new Error(`precomputed judge file ${file}: index ${e.index} appears at ${prev.where} and ${e.where}`);
      byIndex.set(e.index, e);
    }
    if (e.prompt !== null) byPrompt.set(e.prompt, [...(byPrompt.get(e.prompt) ?? []), e]);
  }

  const lookup = (x: JudgeInput): Entry => {
    const idx = x.index !== undefined ? byIndex.get(x.index) : undefined;
    if (idx) return idx;
    const found = byPrompt.get(x.prompt);
    if (!found) {
      const by = x.index !== undefined && byIndex.size ? `index ${x.index} or prompt ${clip(x.prompt)}` : `prompt ${clip(x.prompt)}`;
      throw new Error(`precomputed judge file ${file} has no entry for ${by}`);
    }
    if (found.length === 1) return found[0]!;
    // The same prompt twice: the responses tell the entries apart.
    const same = found.filter((e) => e.responses && sameList(e.responses, x.responses));
    if (same.length === 1) return same[0]!;
    throw new Error(
      `precomputed judge file ${file}: prompt ${clip(x.prompt)} appears ${found.length} times (${found.map((e) => e.where).join(', ')}); key the records by "index" or include "responses"`,
    );
  };

  const name = s.spec;
  return {
    name,
    async judge(batch: JudgeInput[]): Promise<Judgment[]> {
      validateBatch(batch, name);
      return batch.map((x) => {
        const e = lookup(x);
        const k = x.responses.length;
        const what = `precomputed judge file ${file}, ${e.where}`;
        const size = (e.probability ?? e.scores)!.length;
        if (size !== k) throw new Error(`${what}: has a judgment of ${size} responses, but ${k} are being judged for prompt ${clip(x.prompt)}`);
        if (e.responses && !sameList(e.responses, x.responses)) {
          throw new Error(`${what}: its responses differ from the ones being judged for prompt ${clip(x.prompt)} (a file made for another rollout?)`);
        }
        return {
          probability: e.probability ? e.probability.map((r) => [...r]) : matrixFromScores(e.scores!, tau),
          scores: e.scores ? [...e.scores] : null,
        };
      });
    },
    async close() {},
  };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
