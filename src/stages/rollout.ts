// Rollout: K responses per prompt from the policy, in shards. Each shard is written atomically as
// a Parquet file; a rerun skips finished shards. When all are done they are merged into
// generated.parquet with the reference columns (prompt, generate_0..generate_{K-1} as message
// lists) plus token ids, token counts and finish reasons.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelHandle } from '../model/types.js';
import { engineSource, type ResponseSource, type Sample } from './responseSource.js';
import type { Recipe } from '../recipe/types.js';
import type { TextCodec } from '../text/codec.js';
import { readParquet, writeParquet, type ColumnSpec, type Message } from '../data/parquet.js';
import { conversation } from '../data/messages.js';
import { sampleSeed } from './seeds.js';
import { progressBar } from '../util/progress.js';
import { noEvents, type EventSink } from '../util/events.js';

/** The recipe's rollout settings plus the prompt cut and the run seed. */
/** The recipe's sampling settings (the engine choice is the caller's: RolloutStage.source) plus the prompt cut and the run seed. */
export type RolloutOptions = Omit<Recipe['rollout'], 'engine' | 'serverCommand' | 'serverStartupSeconds'> & { maxPromptTokens: number; seed: number };

export interface RolloutRow {
  promptIndex: number;
  prompt: string;
  promptTokens: number[];
  responses: string[];
  responseTokens: number[][];
  finishReasons: string[];
}

export function shardCount(prompts: number, shardSize: number): number {
  return Math.ceil(prompts / shardSize);
}

export function shardName(i: number): string {
  return `shard-${String(i).padStart(5, '0')}.parquet`;
}

export function rolloutColumns(rows: RolloutRow[], k: number): ColumnSpec[] {
  const cols: ColumnSpec[] = [
    { name: 'prompt', kind: 'string', data: rows.map((r) => r.prompt) },
    { name: 'prompt_index', kind: 'int', data: rows.map((r) => r.promptIndex) },
    { name: 'prompt_tokens', kind: 'ints', data: rows.map((r) => r.promptTokens) },
  ];
  for (let j = 0; j < k; j++) cols.push({ name: `generate_${j}`, kind: 'messages', data: rows.map((r) => conversation(r.prompt, r.responses[j]!)) });
  for (let j = 0; j < k; j++) cols.push({ name: `response_tokens_${j}`, kind: 'ints', data: rows.map((r) => r.responseTokens[j]!) });
  for (let j = 0; j < k; j++) cols.push({ name: `num_tokens_${j}`, kind: 'int', data: rows.map((r) => r.responseTokens[j]!.length) });
  for (let j = 0; j < k; j++) cols.push({ name: `finish_reason_${j}`, kind: 'string', data: rows.map((r) => r.finishReasons[j]!) });
  return cols;
}

/** Reads a generated table (shard or merged) back into rows; `k` is inferred from the columns. */
export async function readRollout(file: string): Promise<{ rows: RolloutRow[]; k: number }> {
  const t = await readParquet(file);
  let k = 0;
  while (t.columns.includes(`generate_${k}`)) k++;
  for (const c of ['prompt', 'prompt_index', 'prompt_tokens', 'response_tokens_0']) {
    if (!t.columns.includes(c)) throw new Error(`${file} is not a generated table of sppo-native: column '${c}' is missing (columns: ${t.columns.join(', ')})`);
  }
  const rows = t.rows.map((r) => {
    const responses: string[] = [];
    const responseTokens: number[][] = [];
    const finishReasons: string[] = [];
    for (let j = 0; j < k; j++) {
      const msgs = r[`generate_${j}`] as Message[];
      responses.push(msgs.find((m) => m.role === 'assistant')?.content ?? '');
      responseTokens.push(r[`response_tokens_${j}`] as number[]);
      finishReasons.push(String(r[`finish_reason_${j}`]));
    }
    return {
      promptIndex: r.prompt_index as number,
      prompt: r.prompt as string,
      promptTokens: r.prompt_tokens as number[],
      responses,
      responseTokens,
      finishReasons,
    };
  });
  return { rows, k };
}

/** Samples K responses for `indices` of `prompts` from the engine (in generate calls of batchSize prompts). */
export function samplePrompts(
  model: ModelHandle,
  codec: TextCodec,
  prompts: readonly string[],
  indices: readonly number[],
  opts: RolloutOptions,
  seedOf: (promptIndex: number, k: number) => number,
  tick: (n: number) => void = () => {},
): Promise<RolloutRow[]> {
  return sampleFrom(engineSource(model, codec), codec, prompts, indices, opts, seedOf, tick);
}

/** Samples K responses for `indices` of `prompts` from `source`, batchSize requests at a time. */
export async function sampleFrom(
  source: ResponseSource,
  codec: TextCodec,
  prompts: readonly string[],
  indices: readonly number[],
  opts: RolloutOptions,
  seedOf: (promptIndex: number, k: number) => number,
  tick: (n: number) => void = () => {},
): Promise<RolloutRow[]> {
  const promptTokens = indices.map((i) => codec.encodePrompt(prompts[i]!, opts.maxPromptTokens));
  const settings = { maxNewTokens: opts.maxNewTokens, temperature: opts.temperature, topP: opts.topP };
  const out: Sample[][] = indices.map(() => []);
  for (let k = 0; k < opts.k; k++) {
    for (let b = 0; b < indices.length; b += opts.batchSize) {
      const idx = indices.slice(b, b + opts.batchSize);
      const requests = idx.map((p, j) => ({ promptIndex: p, prompt: prompts[p]!, promptTokens: promptTokens[b + j]!, seed: seedOf(p, k) }));
      const samples = await source.sample(requests, settings);
      if (samples.length !== idx.length) throw new Error(`rollout engine '${source.name}' returned ${samples.length} samples for ${idx.length} prompts`);
      samples.forEach((g, j) => out[b + j]!.push(g));
      tick(idx.length);
    }
  }
  return indices.map((p, i) => ({
    promptIndex: p,
    prompt: prompts[p]!,
    promptTokens: promptTokens[i]!,
    responses: out[i]!.map((g) => g.text),
    responseTokens: out[i]!.map((g) => g.tokens),
    finishReasons: out[i]!.map((g) => g.finishReason),
  }));
}

export interface RolloutStage {
  /** Where samples come from (the engine's policy, or a server serving it); opened when needed. */
  source: () => Promise<ResponseSource>;
  codec: TextCodec;
  prompts: readonly string[];
  dir: string;          // shards go to dir/rollout/
  output: string;       // generated.parquet
  opts: RolloutOptions;
  iteration: number;
  onEvent?: EventSink;
}

/**
 * Reads finished shard `i` and checks that it holds what this rollout would write there: K
 * responses for each of the same prompts. A shard made with other options is refused by name.
 */
async function readShard(file: string, i: number, s: RolloutStage): Promise<RolloutRow[]> {
  const { rows, k } = await readRollout(file);
  const start = i * s.opts.shardSize;
  const n = Math.min(s.opts.shardSize, s.prompts.length - start);
  if (k !== s.opts.k) throw new Error(`rollout shard ${file} holds ${k} responses per prompt, but K is ${s.opts.k}; it was made with other options`);
  if (rows.length !== n) throw new Error(`rollout shard ${file} holds ${rows.length} prompts, but shard ${i} has ${n}; it was made with other options (prompts or shard size)`);
  rows.forEach((r, j) => {
    if (r.promptIndex !== start + j || r.prompt !== s.prompts[start + j]) {
      throw new Error(`rollout shard ${file}, row ${j}: holds prompt ${r.promptIndex} ${JSON.stringify(r.prompt.slice(0, 40))}, not prompt ${start + j} of this prompt set; it was made with other prompts`);
    }
  });
  return rows;
}

/** Runs (or resumes) the rollout stage; returns the number of shards generated now. */
export async function runRollout(s: RolloutStage): Promise<number> {
  const onEvent = s.onEvent ?? noEvents;
  const shardDir = join(s.dir, 'rollout');
  mkdirSync(shardDir, { recursive: true });
  const n = shardCount(s.prompts.length, s.opts.shardSize);
  const todo: number[] = [];
  for (let i = 0; i < n; i++) {
    const file = join(shardDir, shardName(i));
    if (!existsSync(file)) todo.push(i);
    else await readShard(file, i, s); // before any sampling: a mismatch costs nothing
  }
  const total = s.prompts.length * s.opts.k;
  const bar = progressBar(`iteration ${s.iteration} rollout`, total);
  const shardPrompts = (i: number): number => Math.min(s.opts.shardSize, s.prompts.length - i * s.opts.shardSize);
  let done = 0;
  for (let i = 0; i < n; i++) if (!todo.includes(i)) done += shardPrompts(i) * s.opts.k;
  bar.tick(done);
  for (const i of todo) {
    const source = await s.source();
    const start = i * s.opts.shardSize;
    const indices = Array.from({ length: shardPrompts(i) }, (_, j) => start + j);
    const rows = await sampleFrom(source, s.codec, s.prompts, indices, s.opts, (p, k) => sampleSeed(p, k, s.opts.seed), (m) => {
      done += m;
      bar.tick(m);
      onEvent({ type: 'progress', iteration: s.iteration, stage: 'rollout', done, total });
    });
    writeParquet(join(shardDir, shardName(i)), rolloutColumns(rows, s.opts.k));
  }
  bar.done();
  const all: RolloutRow[] = [];
  for (let i = 0; i < n; i++) all.push(...(await readShard(join(shardDir, shardName(i)), i, s)));
  writeParquet(s.output, rolloutColumns(all, s.opts.k));
  return todo.length;
}
