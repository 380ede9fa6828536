// From checked requests to choices: sample on the engine (through the scheduler), cut at stop
// strings, and compute logprobs when asked (from the model's logits at temperature 1, as OpenAI
// and vLLM report them; the top alternatives included).
import { randomInt } from 'node:crypto';
import type { GenerateOptions } from '../model/types.js';
import type { TextCodec } from '../text/codec.js';
import { ApiError, badRequest } from './apiError.js';
import type { GenerateScheduler } from './scheduler.js';
import type { Sampling } from './requests.js';

export type FinishReason = 'stop' | 'length';

export interface TokenLogprob {
  token: string;
  logprob: number;
  top: { token: string; logprob: number }[];
}

export interface Choice {
  index: number;
  promptIndex: number;
  tokens: number[];       // the tokens the text holds (cut at a stop string)
  text: string;
  finishReason: FinishReason;
  logprobs: TokenLogprob[] | null;
}

export interface ModelLimits {
  /** The longest prompt + completion (max_position_embeddings, or the sliding window). */
  context: number | null;
}

/** Where the first stop string starts in `text`, or -1. */
function firstStop(text: string, stop: readonly string[]): number {
  let at = -1;
  for (const s of stop) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

/** The sample cut before its first stop string: text and the fewest tokens whose text reaches the cut. */
function applyStop(codec: TextCodec, tokens: number[], stop: readonly string[]): { tokens: number[]; text: string; stopped: boolean } {
  const full = codec.decode(tokens);
  const at = stop.length ? firstStop(full, stop) : -1;
  if (at < 0) return { tokens, text: full, stopped: false };
  for (let i = 1; i <= tokens.length; i++) {
    const t = codec.decode(tokens.slice(0, i));
    if (t.length >= at + 1 && firstStop(t, stop) >= 0) return { tokens: tokens.slice(0, i - 1), text: full.slice(0, at), stopped: true };
  }
  return { tokens, text: full.slice(0, at), stopped: true };
}

function logSoftmaxRow(row: Float32Array): Float64Array {
  let m = -Infinity;
  for (const v of row) if (v > m) m = v;
  let s = 0;
  for (const v of row) s += Math.exp(v - m);
  const lse = m + Math.log(s);
  return Float64Array.from(row, (v) => v - lse);
}

async function computeLogprobs(scheduler: GenerateScheduler, codec: TextCodec, prompt: number[], gen: number[], top: number): Promise<TokenLogprob[]> {
  if (gen.length === 0) return [];
  const [logits] = await scheduler.exclusive((m) => m.logits([[...prompt, ...gen]]));
  const vocab = logits!.length / (prompt.length + gen.length);
  return gen.map((tok, i) => {
    const pos = prompt.length - 1 + i;
    const lp = logSoftmaxRow(logits!.subarray(pos * vocab, (pos + 1) * vocab));
    const order = top > 0 ? Array.from(lp.keys()).sort((a, b) => lp[b]! - lp[a]! || a - b).slice(0, top) : [];
    return { token: codec.tokenText(tok), logprob: lp[tok]!, top: order.map((id) => ({ token: codec.tokenText(id), logprob: lp[id]! })) };
  });
}

/**
 * n choices for each prompt (choice index = prompt * n + k), drawn from one prefill of the prompt.
 * With a seed, choice k is the seed's k-th sample stream: exactly what the engine's rollout samples
 * as sample k of a prompt whose seed is `seed`.
 */
export async function makeChoices(
  scheduler: GenerateScheduler,
  codec: TextCodec,
  eosIds: number[],
  limits: ModelLimits,
  prompts: number[][],
  s: Sampling,
): Promise<Choice[]> {
  const jobs: Promise<Choice>[] = [];
  prompts.forEach((prompt, p) => {
    let maxTokens = s.maxTokens;
    if (limits.context !== null) {
      const room = limits.context - prompt.length;
      if (room < 1 || (maxTokens !== null && maxTokens > room)) {
        throw badRequest(
          `This model's maximum context length is ${limits.context} tokens. However, you requested ${prompt.length + (maxTokens ?? 1)} tokens ` +
            `(${prompt.length} in the prompt, ${maxTokens ?? 1} for the completion). Please reduce the prompt or the completion length.`,
          'max_tokens',
          'context_length_exceeded',
        );
      }
      maxTokens ??= room;
    }
    if (maxTokens === null) throw badRequest(`'max_tokens' is required for this model (its context length is unknown)`, 'max_tokens');
    const opts: GenerateOptions = { maxNewTokens: maxTokens, temperature: s.temperature, topP: s.topP > 0 ? s.topP : 1e-9, greedy: s.temperature === 0, eosTokenIds: eosIds, samples: s.n };
    const seed = s.seed !== null ? s.seed : randomInt(0, 2 ** 47);
    const gens = scheduler.generate(prompt, seed, opts);
    for (let k = 0; k < s.n; k++) {
      jobs.push(
        gens.then(async (all) => {
          const g = all[k]!;
          const cut = applyStop(codec, g.tokens, s.stop);
          const finishReason: FinishReason = cut.stopped || g.finishReason === 'eos' ? 'stop' : 'length';
          const logprobs = s.logprobs === null ? null : await computeLogprobs(scheduler, codec, prompt, cut.tokens, s.logprobs);
          return { index: p * s.n + k, promptIndex: p, tokens: cut.tokens, text: cut.text, finishReason, logprobs };
        }),
      );
    }
  });
  try {
    return await Promise.all(jobs);
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw new ApiError(500, `the engine failed: ${(err as Error).message}`);
  }
}
