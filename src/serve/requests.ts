// OpenAI request bodies (/v1/completions, /v1/chat/completions) checked and turned into what the
// engine runs. Every refusal names the parameter, as an OpenAI-style 400. Parameters the engine
// cannot honour (penalties, logit_bias, tools, echo, suffix, best_of > n) are refused rather
// than ignored, so a client never gets samples made under settings it did not ask for.
import { badRequest } from './apiError.js';

export const MAX_N = 128;
export const MAX_STOP = 4;
export const MAX_TOP_LOGPROBS = 20;
/** Seeds are JavaScript safe integers (the engine seeds each sample with one). */
export const MAX_SEED = Number.MAX_SAFE_INTEGER;

export interface Sampling {
  model: string;
  n: number;
  temperature: number;
  topP: number;
  /** null: the room the context leaves (chat) */
  maxTokens: number | null;
  seed: number | null;
  stop: string[];
  /** null: no logprobs; k: the sampled token's and the k most likely (k may be 0). */
  logprobs: number | null;
  stream: boolean;
  includeUsage: boolean;
  /** vLLM's extension: the completion's token ids beside its text (choices[].token_ids). */
  returnTokenIds: boolean;
}

export type ChatMessage = { role: string; content: string };

export type PromptInput = { kind: 'text'; text: string } | { kind: 'tokens'; tokens: number[] };

export interface CompletionRequest extends Sampling {
  prompts: PromptInput[];
}

export interface ChatRequest extends Sampling {
  messages: ChatMessage[];
}

type Body = Record<string, unknown>;

function isObject(v: unknown): v is Body {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(body: Body, key: string, def: number, lo: number, hi: number): number {
  const v = body[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw badRequest(`'${key}' must be a number (got ${JSON.stringify(v)})`, key);
  if (v < lo || v > hi) throw badRequest(`'${key}' must be between ${lo} and ${hi} (got ${v})`, key);
  return v;
}

function int(body: Body, key: string, def: number | null, lo: number, hi: number): number | null {
  const v = body[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw badRequest(`'${key}' must be an integer (got ${JSON.stringify(v)})`, key);
  if (v < lo || v > hi) throw badRequest(`'${key}' must be between ${lo} and ${hi} (got ${v})`, key);
  return v;
}

function bool(body: Body, key: string, def: boolean): boolean {
  const v = body[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'boolean') throw badRequest(`'${key}' must be a boolean (got ${JSON.stringify(v)})`, key);
  return v;
}

function refuse(body: Body, key: string, isDefault: (v: unknown) => boolean, why = 'is not supported by sppo-native serve'): void {
  const v = body[key];
  if (v !== undefined && v !== null && !isDefault(v)) throw badRequest(`'${key}' ${why} (got ${JSON.stringify(v)})`, key, 'unsupported_parameter');
}

function sampling(body: Body, chat: boolean): Sampling {
  if (typeof body.model !== 'string' || body.model === '') throw badRequest(`'model' is required: a string naming the served model (see GET /v1/models)`, 'model');
  for (const k of ['presence_penalty', 'frequency_penalty']) refuse(body, k, (v) => v === 0);
  refuse(body, 'logit_bias', (v) => isObject(v) && Object.keys(v).length === 0);
  refuse(body, 'tools', (v) => Array.isArray(v) && v.length === 0);
  refuse(body, 'functions', (v) => Array.isArray(v) && v.length === 0);
  refuse(body, 'response_format', (v) => isObject(v) && v.type === 'text');
  const n = int(body, 'n', 1, 1, MAX_N)!;
  const maxKey = chat && body.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens';
  const maxTokens = int(body, maxKey, chat ? null : 16, 1, 1_000_000);
  const seed = int(body, 'seed', null, 0, MAX_SEED);
  let stop: string[] = [];
  const s = body.stop;
  if (typeof s === 'string') stop = [s];
  else if (Array.isArray(s)) {
    if (s.length > MAX_STOP) throw badRequest(`'stop' takes at most ${MAX_STOP} sequences (got ${s.length})`, 'stop');
    if (!s.every((x) => typeof x === 'string')) throw badRequest(`'stop' must be a string or a list of strings`, 'stop');
    stop = s as string[];
  } else if (s !== undefined && s !== null) throw badRequest(`'stop' must be a string or a list of strings (got ${JSON.stringify(s)})`, 'stop');
  if (stop.some((x) => x === '')) throw badRequest(`'stop' sequences must not be empty`, 'stop');
  let logprobs: number | null = null;
  if (chat) {
    if (bool(body, 'logprobs', false)) logprobs = int(body, 'top_logprobs', 0, 0, MAX_TOP_LOGPROBS);
    else if (body.top_logprobs !== undefined && body.top_logprobs !== null) throw badRequest(`'top_logprobs' needs 'logprobs': true`, 'top_logprobs');
  } else {
    logprobs = int(body, 'logprobs', null, 0, MAX_TOP_LOGPROBS);
    refuse(body, 'echo', (v) => v === false);
    refuse(body, 'suffix', (v) => v === '');
    const bestOf = int(body, 'best_of', n, 1, MAX_N)!;
    if (bestOf !== n) throw badRequest(`'best_of' other than n is not supported by sppo-native serve (got ${bestOf}, n ${n})`, 'best_of', 'unsupported_parameter');
  }
  const stream = bool(body, 'stream', false);
  const so = body.stream_options;
  if (so !== undefined && so !== null && !isObject(so)) throw badRequest(`'stream_options' must be an object`, 'stream_options');
  const includeUsage = isObject(so) && so.include_usage === true;
  if (isObject(so) && !stream) throw badRequest(`'stream_options' is only allowed with 'stream': true`, 'stream_options');
  return {
    model: body.model,
    n,
    temperature: num(body, 'temperature', 1, 0, 2),
    topP: num(body, 'top_p', 1, 0, 1),
    maxTokens,
    seed,
    stop,
    logprobs,
    stream,
    includeUsage,
    returnTokenIds: bool(body, 'return_token_ids', false),
  };
}

function tokenList(v: unknown[], param: string): number[] {
  v.forEach((t, i) => {
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0) throw badRequest(`'${param}'[${i}] must be a token id (a non-negative integer; got ${JSON.stringify(t)})`, param);
  });
  return v as number[];
}

export function parseCompletionRequest(body: unknown): CompletionRequest {
  if (!isObject(body)) throw badRequest('the request body must be a JSON object');
  const s = sampling(body, false);
  const p = body.prompt;
  let prompts: PromptInput[];
  if (typeof p === 'string') prompts = [{ kind: 'text', text: p }];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string')) prompts = (p as string[]).map((text) => ({ kind: 'text', text }));
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'number')) prompts = [{ kind: 'tokens', tokens: tokenList(p, 'prompt') }];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => Array.isArray(x))) prompts = (p as unknown[][]).map((x) => ({ kind: 'tokens', tokens: tokenList(x, 'prompt') }));
  else throw badRequest(`'prompt' must be a string, a list of strings, a list of token ids or a list of such lists (got ${p === undefined ? 'nothing' : JSON.stringify(p).slice(0, 80)})`, 'prompt');
  prompts.forEach((q, i) => {
    if (q.kind === 'tokens' && q.tokens.length === 0) throw badRequest(`'prompt'[${i}] is an empty token list`, 'prompt');
  });
  return { ...s, prompts };
}

export function parseChatRequest(body: unknown): ChatRequest {
  if (!isObject(body)) throw badRequest('the request body must be a JSON object');
  const s = sampling(body, true);
  const m = body.messages;
  if (!Array.isArray(m) || m.length === 0) throw badRequest(`'messages' must be a non-empty list of {role, content}`, 'messages');
  const messages = m.map((x, i): ChatMessage => {
    if (!isObject(x)) throw badRequest(`'messages'[${i}] must be an object {role, content}`, `messages[${i}]`);
    if (typeof x.role !== 'string' || !['system', 'user', 'assistant', 'developer'].includes(x.role)) {
      throw badRequest(`'messages'[${i}].role must be system, user, assistant or developer (got ${JSON.stringify(x.role)})`, `messages[${i}].role`);
    }
    let content: string;
    if (typeof x.content === 'string') content = x.content;
    else if (Array.isArray(x.content) && x.content.every((c) => isObject(c) && c.type === 'text' && typeof c.text === 'string')) {
      content = (x.content as { text: string }[]).map((c) => c.text).join('');
    } else throw badRequest(`'messages'[${i}].content must be a string or a list of text parts (this server has no image or audio input)`, `messages[${i}].content`);
    return { role: x.role === 'developer' ? 'system' : x.role, content };
  });
  return { ...s, messages };
}
