// `sppo-native serve`: an OpenAI-compatible HTTP server on the engine (Node's http module).
//   GET  /v1/models             the served model
//   POST /v1/completions        prompt text (tokenized with the tokenizer's special tokens) or token ids
//   POST /v1/chat/completions   messages rendered with the model's chat template
// n, temperature, top_p, max_tokens, seed, stop, logprobs and stream (server-sent events) are
// honoured, and vLLM's return_token_ids extension (the sampled ids beside the text); concurrent requests are batched into the engine's generate (scheduler.ts). Bad
// requests get OpenAI-style 4xx errors; the process never exits on one.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import type { ModelHandle } from '../model/types.js';
import type { TextCodec } from '../text/codec.js';
import { ApiError, badRequest } from './apiError.js';
import { parseChatRequest, parseCompletionRequest, type Sampling } from './requests.js';
import { makeChoices, type Choice, type ModelLimits, type TokenLogprob } from './choices.js';
import { GenerateScheduler } from './scheduler.js';

export const MAX_BODY_BYTES = 16 * 1024 * 1024;

export interface ServeOptions {
  model: ModelHandle;
  codec: TextCodec;
  /** The name clients put in `model` (default: the model folder). */
  servedModelName: string;
  host?: string;
  port?: number;
  /** Most prompts (choices) in one generate call. */
  maxBatch?: number;
  onLog?: (line: string) => void;
}

export interface RunningServer {
  server: Server;
  url: string; // http://host:port (the API is under /v1)
  scheduler: GenerateScheduler;
  close(): Promise<void>;
}

function contextOf(model: ModelHandle): ModelLimits {
  const c = model.config;
  const window = typeof c.sliding_window === 'number' ? c.sliding_window : null;
  const positions = typeof c.max_position_embeddings === 'number' ? c.max_position_embeddings : null;
  const all = [window, positions].filter((x): x is number => x !== null);
  return { context: all.length ? Math.min(...all) : null };
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new ApiError(413, `the request body is larger than ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(badRequest(`the request body is not valid JSON: ${(err as Error).message}`));
      }
    });
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

const now = (): number => Math.floor(Date.now() / 1000);

function completionLogprobs(lps: TokenLogprob[] | null): unknown {
  if (!lps) return null;
  let offset = 0;
  const textOffset = lps.map((l) => {
    const o = offset;
    offset += l.token.length;
    return o;
  });
  return {
    tokens: lps.map((l) => l.token),
    token_logprobs: lps.map((l) => l.logprob),
    top_logprobs: lps.map((l) => Object.fromEntries(l.top.map((t) => [t.token, t.logprob]))),
    text_offset: textOffset,
  };
}

function chatLogprobs(lps: TokenLogprob[] | null): unknown {
  if (!lps) return null;
  const bytes = (s: string): number[] => [...Buffer.from(s, 'utf8')];
  return {
    content: lps.map((l) => ({
      token: l.token, logprob: l.logprob, bytes: bytes(l.token),
      top_logprobs: l.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: bytes(t.token) })),
    })),
    refusal: null,
  };
}

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  const scheduler = new GenerateScheduler(o.model, o.maxBatch ?? 32);
  const limits = contextOf(o.model);
  const eosIds = o.codec.eosIds.length ? o.codec.eosIds : o.model.eosTokenIds;
  const log = o.onLog ?? (() => {});
  const created = now();

  const checkModel = (s: Sampling): void => {
    if (s.model !== o.servedModelName) {
      throw new ApiError(404, `The model '${s.model}' does not exist; this server serves '${o.servedModelName}'`, 'model', 'model_not_found');
    }
  };
  const checkTokens = (tokens: number[], param: string): number[] => {
    tokens.forEach((t, i) => {
      if (t >= o.model.vocabSize) throw badRequest(`'${param}'[${i}] = ${t} is not a token id of this model (vocabulary ${o.model.vocabSize})`, param);
    });
    return tokens;
  };
  const usage = (prompts: number[][], choices: Choice[]) => {
    const promptTokens = prompts.reduce((a, p) => a + p.length, 0); // once, whatever n
    const completionTokens = choices.reduce((a, c) => a + c.tokens.length, 0);
    return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  };

  // SSE: the engine makes whole samples, so the chunks of a request are sent when its batch is done.
  const stream = (res: ServerResponse, chunks: unknown[]): void => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    for (const c of chunks) res.write(`data: ${JSON.stringify(c)}\n\n`);
    res.end('data: [DONE]\n\n');
  };
  /** Text deltas of a choice, one per token (the text a token adds, after earlier tokens). */
  const deltas = (c: Choice): string[] => {
    const out: string[] = [];
    let prev = '';
    for (let i = 1; i <= c.tokens.length; i++) {
      const t = o.codec.decode(c.tokens.slice(0, i));
      const cur = t.length > c.text.length ? c.text : t;
      if (cur.startsWith(prev) && cur.length > prev.length) out.push(cur.slice(prev.length));
      prev = cur.startsWith(prev) ? cur : prev;
    }
    if (prev.length < c.text.length) out.push(c.text.slice(prev.length));
    return out;
  };

  async function completions(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const r = parseCompletionRequest(await readBody(req));
    checkModel(r);
    const prompts = r.prompts.map((p, i) => (p.kind === 'tokens' ? checkTokens(p.tokens, `prompt[${i}]`) : o.codec.encodeWithSpecial(p.text)));
    prompts.forEach((p, i) => {
      if (p.length === 0) throw badRequest(`'prompt'[${i}] is empty`, 'prompt');
    });
    const choices = await makeChoices(scheduler, o.codec, eosIds, limits, prompts, r);
    const id = `cmpl-${randomUUID()}`;
    const base = { id, object: 'text_completion', created: now(), model: o.servedModelName };
    if (!r.stream) {
      sendJson(res, 200, {
        ...base,
        choices: choices.map((c) => ({
          index: c.index, text: c.text, logprobs: completionLogprobs(c.logprobs), finish_reason: c.finishReason, ...(r.returnTokenIds ? { token_ids: c.tokens } : {}),
        })),
        usage: usage(prompts, choices),
      });
      return;
    }
    const chunks: unknown[] = [];
    for (const c of choices) {
      for (const d of deltas(c)) chunks.push({ ...base, choices: [{ index: c.index, text: d, logprobs: null, finish_reason: null }] });
      chunks.push({ ...base, choices: [{ index: c.index, text: '', logprobs: completionLogprobs(c.logprobs), finish_reason: c.finishReason }] });
    }
    if (r.includeUsage) chunks.push({ ...base, choices: [], usage: usage(prompts, choices) });
    stream(res, chunks);
  }

  async function chat(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const r = parseChatRequest(await readBody(req));
    checkModel(r);
    let prompt: number[];
    try {
      prompt = o.codec.encodeChat(r.messages, true);
    } catch (err) {
      throw badRequest(`the chat template cannot render these messages: ${(err as Error).message}`, 'messages');
    }
    const choices = await makeChoices(scheduler, o.codec, eosIds, limits, [prompt], r);
    const id = `chatcmpl-${randomUUID()}`;
    const base = { id, object: 'chat.completion', created: now(), model: o.servedModelName, system_fingerprint: null };
    if (!r.stream) {
      sendJson(res, 200, {
        ...base,
        choices: choices.map((c) => ({
          index: c.index, message: { role: 'assistant', content: c.text, refusal: null }, logprobs: chatLogprobs(c.logprobs), finish_reason: c.finishReason,
          ...(r.returnTokenIds ? { token_ids: c.tokens } : {}),
        })),
        usage: usage([prompt], choices),
      });
      return;
    }
    const chunkBase = { ...base, object: 'chat.completion.chunk' };
    const chunks: unknown[] = [];
    for (const c of choices) {
      chunks.push({ ...chunkBase, choices: [{ index: c.index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
      for (const d of deltas(c)) chunks.push({ ...chunkBase, choices: [{ index: c.index, delta: { content: d }, logprobs: null, finish_reason: null }] });
      chunks.push({ ...chunkBase, choices: [{ index: c.index, delta: {}, logprobs: chatLogprobs(c.logprobs), finish_reason: c.finishReason }] });
    }
    if (r.includeUsage) chunks.push({ ...chunkBase, choices: [], usage: usage([prompt], choices) });
    stream(res, chunks);
  }

  const routes: Record<string, { method: string; run: (req: IncomingMessage, res: ServerResponse) => Promise<void> }> = {
    '/v1/models': {
      method: 'GET',
      run: async (_req, res) => sendJson(res, 200, { object: 'list', data: [{ id: o.servedModelName, object: 'model', created, owned_by: 'sppo-native' }] }),
    },
    '/v1/completions': { method: 'POST', run: completions },
    '/v1/chat/completions': { method: 'POST', run: chat },
    '/health': { method: 'GET', run: async (_req, res) => sendJson(res, 200, { status: 'ok' }) },
  };

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '');
    const route = routes[path];
    const t0 = Date.now();
    const done = (status: number): void => log(`${req.method} ${path} ${status} ${Date.now() - t0} ms`);
    const fail = (err: unknown): void => {
      const e = err instanceof ApiError ? err : new ApiError(500, `internal error: ${(err as Error).message}`);
      if (!res.headersSent) sendJson(res, e.status, e.body());
      else res.end();
      done(e.status);
    };
    if (!route) return fail(new ApiError(404, `no route ${req.method} ${path} (this server has GET /v1/models, POST /v1/completions, POST /v1/chat/completions)`, null, 'not_found'));
    if (req.method !== route.method) return fail(new ApiError(405, `${path} takes ${route.method}, not ${req.method}`, null, 'method_not_allowed'));
    route.run(req, res).then(() => done(res.statusCode), fail);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 8000, o.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    server,
    scheduler,
    url: `http://${host}:${addr.port}`,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await scheduler.idle(); // requests whose clients went away may still be on the engine
    },
  };
}
