// `sppo-native export <benchmark>`: answers of one model to a benchmark's questions, in the file
// the benchmark's judge reads (outputs.ts), with the decoding settings recorded beside them
// (<name>.decoding.json). Turns are answered in order, each with the whole conversation so far
// under the model's chat template; every answer is seeded (question index, turn, --seed), so a
// rerun gives the same answers. Answers are kept in <name>.partial.jsonl as batches finish, so
// an interrupted export resumes; the final file is written atomically and the partial removed.
import { existsSync, mkdirSync, readFileSync, rmSync, appendFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { ModelHandle } from '../model/types.js';
import type { DeviceName } from '../native/kinds.js';
import { TextCodec } from '../text/codec.js';
import { recordOptions } from '../run/optionsRecord.js';
import { acquireRunLock } from '../run/lock.js';
import { writeFileAtomic } from '../run/atomic.js';
import { answerSeed } from '../stages/seeds.js';
import { nativeEngine, checkDevice, type ModelProvider } from '../pipeline/modelProvider.js';
import { noEvents, type EventSink } from '../util/events.js';
import { readQuestions, type Benchmark, type Question } from './questions.js';
import { defaultDecoding, temperatureFor, type Decoding } from './decoding.js';
import { outputFileName, renderOutputs, type Answer } from './outputs.js';

export interface ExportOptions {
  benchmark: Benchmark;
  model: string;
  prompts: string;
  /** Output folder (created): the answers file and its .decoding.json. */
  output: string;
  /** Name of the model in the answers (generator / model_id); default from the model folder. */
  modelId?: string;
  promptColumn?: string;
  temperature?: number;
  topP?: number;
  maxNewTokens?: number;
  seed?: number;
  maxPrompts?: number;
  batchSize?: number;
  chatTemplate?: string | null;
  device?: DeviceName;
  provider?: ModelProvider;
  onEvent?: EventSink;
}

/** A checkpoint's name: <run>-iter<t>[-epoch<e>] for a run folder's checkpoint, else the folder's name. */
export function defaultModelId(folder: string): string {
  const abs = resolve(folder);
  const m = /([^/\\]+)[/\\]iter-(\d+)[/\\]checkpoint-epoch-(\d+)$/.exec(abs);
  if (m) return `${m[1]}-iter${m[2]}${m[3] === '1' ? '' : `-epoch${m[3]}`}`;
  return basename(abs);
}

interface PartialLine {
  q: number;
  turn: number;
  text: string;
  tokens: number;
  finish: 'eos' | 'length';
}

function readPartial(file: string): Map<string, PartialLine> {
  const m = new Map<string, PartialLine>();
  if (!existsSync(file)) return m;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      const p = JSON.parse(line) as PartialLine;
      m.set(`${p.q}:${p.turn}`, p);
    } catch {
      // a torn last line: that answer is made again
    }
  }
  return m;
}

export async function exportBenchmark(o: ExportOptions): Promise<{ file: string; decoding: string; answers: number }> {
  const onEvent = o.onEvent ?? noEvents;
  const provider = o.provider ?? nativeEngine;
  const device = o.device ?? 'cpu';
  const model = resolve(o.model);
  if (!existsSync(join(model, 'config.json'))) throw new Error(`model folder ${model} has no config.json`);
  const chatTemplate = o.chatTemplate ? resolve(o.chatTemplate) : null;
  const codec = TextCodec.load(model, { chatTemplateFile: chatTemplate });
  let questions = readQuestions(o.benchmark, resolve(o.prompts), o.promptColumn);
  if (o.maxPrompts) questions = questions.slice(0, o.maxPrompts);
  const modelId = o.modelId ?? defaultModelId(model);
  const def = defaultDecoding(o.benchmark);
  const decoding: Decoding = {
    temperature: o.temperature ?? def.temperature,
    topP: o.topP ?? def.topP,
    maxNewTokens: o.maxNewTokens ?? def.maxNewTokens,
    seed: o.seed ?? 42,
  };
  const out = resolve(o.output);
  mkdirSync(out, { recursive: true });
  const name = outputFileName(o.benchmark, modelId);
  const file = join(out, name);
  const decodingFile = join(out, o.benchmark === 'alpaca-eval' ? 'decoding.json' : name.replace(/\.jsonl$/, '.decoding.json'));
  const partialFile = join(out, `.${name}.partial.jsonl`);
  const lock = acquireRunLock(out);
  try {
    await checkDevice(provider, device);
    const settings = {
      benchmark: o.benchmark, model, modelId, prompts: resolve(o.prompts), promptColumn: o.promptColumn ?? null,
      questions: questions.length, chatTemplate, device, ...decoding, seedRule: 'answer (question i, turn t) is sample 0 of seed 2*(i+1) + 2^31*t + 2^32*seed',
    };
    recordOptions(decodingFile, settings, existsSync(partialFile), ['device']);
    const done = readPartial(partialFile);
    let handle: ModelHandle | undefined;
    const total = questions.reduce((a, q) => a + q.turns.length, 0);
    const progress = (): void => onEvent({ type: 'progress', iteration: 0, stage: `export ${o.benchmark}`, done: done.size, total, unit: 'samples' });
    progress();
    const context = contextOf(model);
    let clamped = 0;
    try {
      const maxTurns = Math.max(...questions.map((q) => q.turns.length));
      for (let turn = 0; turn < maxTurns; turn++) {
        const todo = questions.map((q, i) => ({ q, i })).filter(({ q, i }) => turn < q.turns.length && !done.has(`${i}:${turn}`));
        // Settings per generate call: group by temperature (per category on mt-bench).
        const groups = new Map<number, { q: Question; i: number }[]>();
        for (const t of todo) {
          const temp = temperatureFor(decoding, t.q.category);
          if (!groups.has(temp)) groups.set(temp, []);
          groups.get(temp)!.push(t);
        }
        for (const [temperature, items] of groups) {
          const batch = o.batchSize ?? 8;
          for (let b = 0; b < items.length; b += batch) {
            const chunk = items.slice(b, b + batch);
            const prompts = chunk.map(({ q, i }) => {
              const messages: { role: string; content: string }[] = [];
              for (let t = 0; t < turn; t++) {
                messages.push({ role: 'user', content: q.turns[t]! }, { role: 'assistant', content: done.get(`${i}:${t}`)!.text });
              }
              messages.push({ role: 'user', content: q.turns[turn]! });
              return codec.encodeChat(messages, true);
            });
            let maxNew = decoding.maxNewTokens;
            if (context !== null) {
              const longest = Math.max(...prompts.map((p) => p.length));
              if (longest >= context) throw new Error(`question ${chunk[prompts.findIndex((p) => p.length === longest)]!.q.id}, turn ${turn + 1}: the conversation has ${longest} tokens, the model's context ${context}`);
              if (longest + maxNew > context) {
                maxNew = context - longest;
                clamped += chunk.length;
              }
            }
            handle ??= await provider.load(model, device);
            const gens = await handle.generate(prompts, chunk.map(({ i }) => answerSeed(i, turn, decoding.seed)), {
              maxNewTokens: maxNew, temperature, topP: decoding.topP, greedy: temperature === 0, eosTokenIds: codec.eosIds.length ? codec.eosIds : handle.eosTokenIds,
            });
            const lines = gens.map((g, j): PartialLine => ({ q: chunk[j]!.i, turn, text: codec.decode(g.tokens), tokens: g.tokens.length - (g.finishReason === 'eos' ? 1 : 0), finish: g.finishReason }));
            appendFileSync(partialFile, lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
            for (const l of lines) done.set(`${l.q}:${l.turn}`, l);
            progress();
          }
        }
      }
    } finally {
      handle?.free();
    }
    if (clamped) onEvent({ type: 'log', message: `${clamped} answer(s) had fewer than ${decoding.maxNewTokens} new tokens of room in the model's context (${context}) and were cut to fit` });
    const answers: Answer[] = questions.map((q, i) => ({ question: q, turns: q.turns.map((_, t) => done.get(`${i}:${t}`)!) }));
    writeFileAtomic(file, renderOutputs(o.benchmark, modelId, answers, Date.now() / 1000));
    rmSync(partialFile, { force: true });
    return { file, decoding: decodingFile, answers: answers.length };
  } finally {
    lock.release();
  }
}

/** The longest conversation the model takes (max_position_embeddings, or its sliding window). */
function contextOf(folder: string): number | null {
  const c = JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8')) as Record<string, unknown>;
  const all = [c.max_position_embeddings, c.sliding_window].filter((x): x is number => typeof x === 'number' && x > 0);
  return all.length ? Math.min(...all) : null;
}

