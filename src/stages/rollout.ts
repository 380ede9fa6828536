// Rollout: K responses per prompt from the policy, in shards. Each shard is written atomically as
// a Parquet file; a rerun skips finished shards. When all are done they are merged into
// generated.parquet with the reference columns (prompt, generate_0..generate_{K-1} as message
// lists) plus token ids, token counts and finish reasons.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { GenerateStats, ModelHandle } from '../model/types.js';
import { engineSource, type ResponseSource, type Sample } from './responseSource.js';
import type { Recipe } from '../recipe/types.js';
import type { TextCodec } from '../text/codec.js';
import { readParquet, writeParquet, type ColumnSpec, type Message } from '../data/parquet.js';
import { conversation } from '../data/messages.js';
import { promptSeed } from './seeds.js';
import { contextWarning, fitToWindow, newTokensFor, promptCut } from './contextWindow.js';
import { noEvents, type EventSink } from '../util/events.js';
import { heartbeatMs, withWaitNotice } from '../util/waitNotice.js';
import { describeEngineCall } from './engineCallLog.js';

/** The recipe's sampling settings (the engine choice is the caller's: RolloutStage.source) plus the prompt cut and the run seed. */
export type RolloutOptions = Omit<Recipe['rollout'], 'engine' | 'serverCommand' | 'serverStartupSeconds' | BudgetKey> &
  Partial<Pick<Recipe['rollout'], BudgetKey>> & { maxPromptTokens: number; seed: number };
/** The engine's continuous-batching budgets (absent = automatic); they never change the samples. */
type BudgetKey = 'maxBatchTokens' | 'maxRunningSequences' | 'maxCacheTokens' | 'maxSwapTokens';

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

/** `g` cut at the context window (stages/contextWindow.ts fitToWindow), its text decoded again when cut. */
function fitSample(codec: TextCodec, g: Sample, promptLength: number, window: number | null): Sample {
  const cut = fitToWindow({ tokens: g.tokens, logprobs: [], finishReason: g.finishReason }, promptLength, window);
  return cut.tokens.length === g.tokens.length ? g : { tokens: cut.tokens, text: codec.decode(cut.tokens), finishReason: cut.finishReason };
}

/** Samples K responses for `indices` of `prompts` from the engine (see sampleFrom). */
export function samplePrompts(
  model: ModelHandle,
  codec: TextCodec,
  prompts: readonly string[],
  indices: readonly number[],
  opts: RolloutOptions,
  seedOf: (promptIndex: number) => number,
  tick: (n: number) => void = () => {},
): Promise<RolloutRow[]> {
  return sampleFrom(engineSource(model, codec), codec, prompts, indices, opts, seedOf, tick);
}

/** Prompts per request to the source: rollout.batchSize, or all `n` prompts asked for at once when it is 0. */
export function promptsPerCall(batchSize: number, n: number): number {
  return Math.max(1, batchSize > 0 ? Math.min(batchSize, n) : n);
}

/** How the rollout splits its prompts into generate calls, for a log line. */
export function describeCalls(batchSize: number): string {
  return batchSize > 0 ? `${batchSize} prompts per generate call` : 'one generate call over all the prompts to sample, shards written as they finish';
}

/**
 * Samples K responses for `indices` of `prompts` from `source` and hands each prompt's row to
 * `onRow(i, row)` (i: its position in `indices`) as soon as its samples are in: one request for
 * all of them (opts.batchSize 0, the default: the engine batches continuously within it, so
 * finished samples leave and waiting prompts join at every step) or batchSize prompts per request;
 * each asks for all K samples of its prompts (the engine draws them from one shared prefill).
 * `tick` counts finished samples, as the source reports them during a request (or all at its end).
 *
 * The samples do not depend on how the prompts are split into requests: each is drawn from its own
 * seed alone (Philox(seed, k, step)), and the one length a request takes is cut per sample at the
 * context window (fitSample). A request asks for M = min(maxNewTokens, window - shortest prompt)
 * new tokens; the sample of a prompt of P >= shortest tokens is cut to window - P <= M tokens, so it
 * keeps min(its EOS, maxNewTokens, window - P) tokens whatever the shortest prompt of its request
 * (test: rollout.calls).
 */
export async function sampleEach(
  source: ResponseSource,
  codec: TextCodec,
  prompts: readonly string[],
  indices: readonly number[],
  opts: RolloutOptions,
  seedOf: (promptIndex: number) => number,
  onRow: (i: number, row: RolloutRow) => void,
  tick: (n: number) => void = () => {},
  onCall: (stats: GenerateStats, prompts: number) => void = () => {},
): Promise<void> {
  const window = source.window;
  const promptTokens = indices.map((i) => codec.encodePrompt(prompts[i]!, promptCut(opts.maxPromptTokens, window)));
  const size = promptsPerCall(opts.batchSize, indices.length);
  for (let b = 0; b < indices.length; b += size) {
    const idx = indices.slice(b, b + size);
    const batch = promptTokens.slice(b, b + size);
    const shortest = Math.min(...batch.map((p) => p.length));
    const requests = idx.map((p, j) => ({ promptIndex: p, prompt: prompts[p]!, promptTokens: batch[j]!, seed: seedOf(p) }));
    const settings = {
      maxNewTokens: newTokensFor(opts.maxNewTokens, shortest, window), temperature: opts.temperature, topP: opts.topP, samples: opts.k,
      budget: { maxBatchTokens: opts.maxBatchTokens ?? 0, maxRunningSequences: opts.maxRunningSequences ?? 0, maxCacheTokens: opts.maxCacheTokens ?? 0, maxSwapTokens: opts.maxSwapTokens ?? -1 },
    };
    const all = idx.length * opts.k;
    let counted = 0;
    const count = (finished: number): void => {
      const now = Math.min(finished, all);
      if (now > counted) {
        tick(now - counted);
        counted = now;
      }
    };
    const seen = new Array<boolean>(idx.length).fill(false);
    const stats = await source.sample(requests, settings, (j, samples) => {
      if (!Number.isInteger(j) || j < 0 || j >= idx.length) throw new Error(`rollout engine '${source.name}' handed over request ${j}, but the call has ${idx.length}`);
      if (seen[j]) throw new Error(`rollout engine '${source.name}' handed over prompt ${idx[j]} twice`);
      if (samples.length !== opts.k) throw new Error(`rollout engine '${source.name}' returned ${samples.length} samples for prompt ${idx[j]} x ${opts.k}`);
      seen[j] = true;
      const cut = samples.map((g) => fitSample(codec, g, batch[j]!.length, window));
      const p = idx[j]!;
      onRow(b + j, {
        promptIndex: p,
        prompt: prompts[p]!,
        promptTokens: batch[j]!,
        responses: cut.map((g) => g.text),
        responseTokens: cut.map((g) => g.tokens),
        finishReasons: cut.map((g) => g.finishReason),
      });
    }, count);
    const handed = seen.filter(Boolean).length;
    if (handed !== idx.length) throw new Error(`rollout engine '${source.name}' returned samples for ${handed} of ${idx.length} prompts`);
    count(all); // what the source did not report
    if (stats) onCall(stats, idx.length);
  }
}

/** sampleEach's rows, in the order of `indices`. */
export async function sampleFrom(
  source: ResponseSource,
  codec: TextCodec,
  prompts: readonly string[],
  indices: readonly number[],
  opts: RolloutOptions,
  seedOf: (promptIndex: number) => number,
  tick: (n: number) => void = () => {},
): Promise<RolloutRow[]> {
  const rows: RolloutRow[] = new Array<RolloutRow>(indices.length);
  await sampleEach(source, codec, prompts, indices, opts, seedOf, (i, row) => { rows[i] = row; }, tick);
  return rows;
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
  /** The stage name in progress events (default 'rollout'). */
  stageName?: string;
  onEvent?: EventSink;
  /** Data parallel: this rank generates shards i with i % world == rank (default: all). */
  shards?: { rank: number; world: number };
  /** Merge the shards into `output` (default true; under data parallelism rank 0 does it once all are written). */
  merge?: boolean;
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

/**
 * Runs (or resumes) the rollout stage; returns the number of shards generated now. Under data
 * parallelism each rank runs it for its shards (s.shards) and rank 0 merges (s.merge).
 */
export async function runRollout(s: RolloutStage): Promise<number> {
  const onEvent = s.onEvent ?? noEvents;
  const shardDir = join(s.dir, 'rollout');
  mkdirSync(shardDir, { recursive: true });
  const n = shardCount(s.prompts.length, s.opts.shardSize);
  const mine = (i: number): boolean => !s.shards || i % s.shards.world === s.shards.rank;
  const todo: number[] = [];
  for (let i = 0; i < n; i++) {
    if (!mine(i)) continue;
    const file = join(shardDir, shardName(i));
    if (!existsSync(file)) todo.push(i);
    else await readShard(file, i, s); // before any sampling: a mismatch costs nothing
  }
  const shardPrompts = (i: number): number => Math.min(s.opts.shardSize, s.prompts.length - i * s.opts.shardSize);
  let total = 0;
  let done = 0;
  for (let i = 0; i < n; i++) {
    if (!mine(i)) continue;
    total += shardPrompts(i) * s.opts.k;
    if (!todo.includes(i)) done += shardPrompts(i) * s.opts.k;
  }
  const progress = (): void => onEvent({ type: 'progress', iteration: s.iteration, stage: s.stageName ?? 'rollout', done, total, unit: 'samples' });
  progress();
  if (todo.length > 0) {
    const source = await s.source();
    const w = contextWarning(source.window, s.opts.maxPromptTokens, s.opts.maxNewTokens, source.name);
    if (w) onEvent({ type: 'warning', message: w });
    // A source that spans shards gets them all in one go (within rollout.batchSize prompts a call),
    // so its batch stays full across shard boundaries; each shard is written the moment its last
    // prompt is in. Other sources get one shard at a time.
    const groups = source.spansShards ? [todo] : todo.map((i) => [i]);
    for (const group of groups) {
      const indices: number[] = [];
      const rows = new Map<number, RolloutRow[]>();  // shard -> rows, until written
      const missing = new Map<number, number>();    // shard -> prompts still sampling
      for (const i of group) {
        const start = i * s.opts.shardSize;
        for (let j = 0; j < shardPrompts(i); j++) indices.push(start + j);
        rows.set(i, new Array<RolloutRow>(shardPrompts(i)));
        missing.set(i, shardPrompts(i));
      }
      const onRow = (_: number, row: RolloutRow): void => {
        const i = Math.floor(row.promptIndex / s.opts.shardSize);
        const shard = rows.get(i)!;
        shard[row.promptIndex - i * s.opts.shardSize] = row;
        const left = missing.get(i)! - 1;
        missing.set(i, left);
        if (left > 0) return;
        writeParquet(join(shardDir, shardName(i)), rolloutColumns(shard, s.opts.k));
        rows.delete(i);
      };
      // One generate call can take minutes: the progress is re-sent meanwhile, so that a log shows
      // the elapsed time (a line every SPPO_PROGRESS_EVERY seconds) even before the call returns.
      const sampling = sampleEach(source, s.codec, s.prompts, indices, s.opts, (p) => promptSeed(p, s.opts.seed), onRow, (m) => {
        done += m;
        progress();
      }, (stats, prompts) => onEvent({ type: 'log', message: describeEngineCall(stats, prompts, s.opts.k) }));
      await withWaitNotice(sampling, heartbeatMs(), progress);
      if (rows.size > 0) throw new Error(`rollout: internal error: shards ${[...rows.keys()].join(', ')} were not completed by their call`);
    }
  }
  if (s.merge === false) return todo.length;
  const all: RolloutRow[] = [];
  for (let i = 0; i < n; i++) all.push(...(await readShard(join(shardDir, shardName(i)), i, s)));
  writeParquet(s.output, rolloutColumns(all, s.opts.k));
  return todo.length;
}
