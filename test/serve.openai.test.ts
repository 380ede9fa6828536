// `sppo-native serve` against the official `openai` npm client on loopback, on a tiny random chat
// model and the real engine: samples equal the engine's own for the same seeds (so batching
// changes nothing), n, temperature 0, top_p, max_tokens, stop, streaming, logprobs against the
// model's logits, concurrent requests batched into few generate calls, OpenAI-style 4xx errors
// (and the server still answering after them), and the CLI command itself.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { loadModel, type EngineModel } from '../src/model/engine.js';
import { TextCodec } from '../src/text/codec.js';
import { startServer, type RunningServer } from '../src/serve/server.js';
import { writeChatModel } from './helpers/chatModel.js';
import { makeTempDir, testSeed } from './helpers/modelFixtures.js';
import { seededRandom } from './sppo.seed.js';

const { dir, cleanup } = makeTempDir('sppo-serve-');
const { rand } = seededRandom('serve.openai');
const folder = writeChatModel(join(dir, 'chat'), testSeed('serve.openai'));
const NAME = 'tiny-chat';
let server: RunningServer;
let served: EngineModel;
let ref: EngineModel;
let codec: TextCodec;
let client: OpenAI;

beforeAll(async () => {
  codec = TextCodec.load(folder);
  served = await loadModel(folder);
  ref = await loadModel(folder);
  server = await startServer({ model: served, codec, servedModelName: NAME, port: 0, maxBatch: 16 });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
});
afterAll(async () => {
  await server?.close();
  served?.free();
  ref?.free();
  cleanup();
});

const eos = (): number[] => codec.eosIds;
/** Sample k of what the engine samples for `prompt` with `seed` (the server's choice k). */
async function engineSample(prompt: number[], seed: number, maxNewTokens: number, temperature = 1, topP = 1, k = 0): Promise<{ text: string; tokens: number[]; eos: boolean }> {
  const all = await ref.generate([prompt], [seed], { maxNewTokens, temperature, topP, greedy: temperature === 0, eosTokenIds: eos(), samples: k + 1 });
  const g = all[k];
  return { text: codec.decode(g!.tokens), tokens: g!.tokens, eos: g!.finishReason === 'eos' };
}
const userPrompt = (): string => ['tell me about the sky', 'write a song about a red bird', 'what is a good day ?'][Math.floor(rand() * 3)]!;

describe('sppo-native serve with the openai client', () => {
  it('lists the served model', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual([NAME]);
  });

  it('completions: token-id and text prompts, n choices as the seed\'s sample streams, the engine’s own samples, usage', async () => {
    const prompt = codec.encodeChat([{ role: 'user', content: userPrompt() }], true);
    const seed = Math.floor(rand() * 1e9);
    const r = await client.completions.create({ model: NAME, prompt, n: 3, seed, max_tokens: 12, temperature: 1, top_p: 1 });
    expect(r.choices).toHaveLength(3);
    let completion = 0;
    for (const c of r.choices) {
      const want = await engineSample(prompt, seed, 12, 1, 1, c.index);
      expect(c.text, `choice ${c.index}`).toBe(want.text);
      expect(c.finish_reason).toBe(want.eos ? 'stop' : 'length');
      completion += want.tokens.length;
    }
    expect(r.usage).toEqual({ prompt_tokens: prompt.length, completion_tokens: completion, total_tokens: prompt.length + completion });
    // A text prompt is tokenized with the tokenizer's special tokens (BOS here).
    const text = 'red blue green';
    const t = await client.completions.create({ model: NAME, prompt: text, seed, max_tokens: 5 });
    expect(t.choices[0]!.text).toBe((await engineSample(codec.encodeWithSpecial(text), seed, 5)).text);
    expect(t.usage!.prompt_tokens).toBe(codec.encodeWithSpecial(text).length);
  });

  it('chat: the chat template, temperature 0 is greedy and repeatable, top_p and max_tokens pass through', async () => {
    const messages = [{ role: 'user' as const, content: userPrompt() }];
    const prompt = codec.encodeChat(messages, true);
    const seed = Math.floor(rand() * 1e9);
    const r = await client.chat.completions.create({ model: NAME, messages, seed, max_tokens: 10, temperature: 0.8, top_p: 0.7 });
    const want = await engineSample(prompt, seed, 10, 0.8, 0.7);
    expect(r.choices[0]!.message).toMatchObject({ role: 'assistant', content: want.text });
    expect(r.usage!.prompt_tokens).toBe(prompt.length);
    expect(r.usage!.completion_tokens).toBe(want.tokens.length);
    const g1 = await client.chat.completions.create({ model: NAME, messages, temperature: 0, max_tokens: 8 });
    const g2 = await client.chat.completions.create({ model: NAME, messages, temperature: 0, max_tokens: 8 });
    expect(g1.choices[0]!.message.content).toBe(g2.choices[0]!.message.content);
    expect(g1.choices[0]!.message.content).toBe((await engineSample(prompt, 0, 8, 0)).text);
    // A multi-turn chat renders all turns.
    const turns = [...messages, { role: 'assistant' as const, content: 'blue sky' }, { role: 'user' as const, content: 'and the sea ?' }];
    const m = await client.chat.completions.create({ model: NAME, messages: turns, seed, max_tokens: 6 });
    expect(m.choices[0]!.message.content).toBe((await engineSample(codec.encodeChat(turns, true), seed, 6)).text);
  });

  it('stop strings cut the text before the first one, with finish_reason stop', async () => {
    const prompt = codec.encodeChat([{ role: 'user', content: 'describe a long day' }], true);
    // Find a seed whose sample has a word in its middle; stop at that word.
    for (let seed = 1; seed < 200; seed++) {
      const full = await engineSample(prompt, seed, 16);
      const words = full.text.split(' ').filter(Boolean);
      if (words.length < 4) continue;
      const stop = ` ${words[2]!}`;
      const r = await client.completions.create({ model: NAME, prompt, seed, max_tokens: 16, stop: [stop, 'zzzz-never'] });
      const cut = full.text.slice(0, full.text.indexOf(stop));
      expect(r.choices[0]!.text).toBe(cut);
      expect(r.choices[0]!.finish_reason).toBe('stop');
      expect(r.usage!.completion_tokens).toBeLessThan(full.tokens.length);
      return;
    }
    throw new Error('no seed gave a sample of four words');
  });

  it('streams server-sent events whose deltas add up to the unstreamed answer, with usage on request', async () => {
    const messages = [{ role: 'user' as const, content: userPrompt() }];
    const seed = Math.floor(rand() * 1e9);
    const whole = await client.chat.completions.create({ model: NAME, messages, seed, max_tokens: 12, n: 2 });
    const stream = await client.chat.completions.create({ model: NAME, messages, seed, max_tokens: 12, n: 2, stream: true, stream_options: { include_usage: true } });
    const text = ['', ''];
    const finish: (string | null)[] = [null, null];
    let usage: unknown = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text[c.index] += c.delta.content ?? '';
        if (c.finish_reason) finish[c.index] = c.finish_reason;
      }
    }
    expect(chunks).toBeGreaterThan(4);
    expect(text).toEqual(whole.choices.map((c) => c.message.content));
    expect(finish).toEqual(whole.choices.map((c) => c.finish_reason));
    expect(usage).toEqual(whole.usage);
    const cs = await client.completions.create({ model: NAME, prompt: 'red sky', seed, max_tokens: 7, stream: true });
    let ctext = '';
    for await (const c of cs) ctext += c.choices[0]?.text ?? '';
    expect(ctext).toBe((await client.completions.create({ model: NAME, prompt: 'red sky', seed, max_tokens: 7 })).choices[0]!.text);
  });

  it('logprobs are the model’s log-softmax at temperature 1, with the top alternatives', async () => {
    const messages = [{ role: 'user' as const, content: 'is the sky blue ?' }];
    const prompt = codec.encodeChat(messages, true);
    const r = await client.chat.completions.create({ model: NAME, messages, seed: 7, max_tokens: 4, temperature: 1, logprobs: true, top_logprobs: 5 });
    const content = r.choices[0]!.logprobs!.content!;
    const gen = (await engineSample(prompt, 7, 4)).tokens;
    expect(content).toHaveLength(gen.length);
    const [logits] = await ref.logits([[...prompt, ...gen]]);
    const V = ref.vocabSize;
    content.forEach((c, i) => {
      const row = Array.from(logits!.subarray((prompt.length - 1 + i) * V, (prompt.length + i) * V));
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
      expect(c.logprob).toBeCloseTo(row[gen[i]!]! - lse, 5);
      expect(c.token).toBe(codec.tokenText(gen[i]!));
      const best = [...row.keys()].sort((a, b) => row[b]! - row[a]!).slice(0, 5);
      expect(c.top_logprobs.map((t) => t.token)).toEqual(best.map((id) => codec.tokenText(id)));
      expect(c.top_logprobs[0]!.logprob).toBeCloseTo(row[best[0]!]! - lse, 5);
    });
    const cr = await client.completions.create({ model: NAME, prompt, seed: 7, max_tokens: 4, logprobs: 2 });
    expect(cr.choices[0]!.logprobs!.token_logprobs).toHaveLength(gen.length);
    expect(cr.choices[0]!.logprobs!.token_logprobs![0]).toBeCloseTo(content[0]!.logprob, 6);
  });

  it('batches concurrent requests into few generate calls; each still gets its own seeded sample', async () => {
    const before = { ...server.scheduler.stats };
    const prompts = Array.from({ length: 12 }, () => codec.encodeChat([{ role: 'user', content: userPrompt() }], true));
    const seeds = prompts.map(() => Math.floor(rand() * 1e9));
    // Hold the model until every request has queued: on a loaded machine the tiny model can
    // answer each request before the next one arrives, and the test is about batching.
    const held = server.scheduler.exclusive(async () => {
      for (let waited = 0; server.scheduler.pending < 12 && waited < 20_000; waited += 5) await new Promise((r) => setTimeout(r, 5));
    });
    const answers = await Promise.all(prompts.map((p, i) => client.completions.create({ model: NAME, prompt: p, seed: seeds[i]!, max_tokens: 9 })));
    await held;
    const calls = server.scheduler.stats.calls - before.calls;
    expect(server.scheduler.stats.prompts - before.prompts).toBe(12);
    expect(calls).toBeLessThan(12);
    expect(server.scheduler.stats.largestBatch).toBeGreaterThan(1);
    console.log(`[serve.openai] 12 concurrent requests: ${calls} generate call(s)`);
    for (let i = 0; i < 12; i++) expect(answers[i]!.choices[0]!.text).toBe((await engineSample(prompts[i]!, seeds[i]!, 9)).text);
  });

  it('refuses bad requests with OpenAI-style 4xx errors and keeps serving', async () => {
    const bad = async (p: Promise<unknown>): Promise<{ status: number; message: string; code: unknown; param: unknown }> => {
      try {
        await p;
      } catch (err) {
        const e = err as InstanceType<typeof OpenAI.APIError>;
        expect(e).toBeInstanceOf(OpenAI.APIError);
        return { status: e.status!, message: e.message, code: e.code, param: e.param };
      }
      throw new Error('expected an error');
    };
    const messages = [{ role: 'user' as const, content: 'hi' }];
    expect(await bad(client.chat.completions.create({ model: NAME, messages, temperature: 5 }))).toMatchObject({ status: 400, param: 'temperature' });
    expect(await bad(client.chat.completions.create({ model: 'nope', messages }))).toMatchObject({ status: 404, code: 'model_not_found' });
    expect(await bad(client.chat.completions.create({ model: NAME, messages: [] }))).toMatchObject({ status: 400, param: 'messages' });
    expect(await bad(client.chat.completions.create({ model: NAME, messages, n: 0 }))).toMatchObject({ status: 400, param: 'n' });
    expect(await bad(client.chat.completions.create({ model: NAME, messages, logit_bias: { 5: 10 } }))).toMatchObject({ status: 400, code: 'unsupported_parameter' });
    expect(await bad(client.chat.completions.create({ model: NAME, messages, presence_penalty: 1 }))).toMatchObject({ status: 400, code: 'unsupported_parameter' });
    expect(await bad(client.chat.completions.create({ model: NAME, messages, max_tokens: 100_000 }))).toMatchObject({ status: 400, code: 'context_length_exceeded' });
    expect(await bad(client.completions.create({ model: NAME, prompt: [1, 2, 99999] }))).toMatchObject({ status: 400 });
    expect(await bad(client.completions.create({ model: NAME, prompt: 'x', seed: -1 }))).toMatchObject({ status: 400, param: 'seed' });
    expect(await bad(client.completions.create({ model: NAME, prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] }))).toMatchObject({ status: 400, param: 'stop' });
    const raw = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model": ' });
    expect(raw.status).toBe(400);
    expect(((await raw.json()) as { error: { message: string } }).error.message).toMatch(/not valid JSON/);
    expect((await fetch(`${server.url}/v2/nothing`)).status).toBe(404);
    expect((await fetch(`${server.url}/v1/models`, { method: 'POST' })).status).toBe(405);
    // Still serving.
    expect((await client.chat.completions.create({ model: NAME, messages, max_tokens: 2 })).choices).toHaveLength(1);
  });
});

const repo = join(import.meta.dirname, '..');
const haveDist = existsSync(join(repo, 'dist', 'cli', 'main.js'));
describe.skipIf(!haveDist)('the serve command (bin/ over dist/; skipped when dist/ is not built, which `npm test` does first)', () => {
  it('starts on a free port, prints its address, answers the client, and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, [join(repo, 'bin', 'sppo-native.js'), 'serve', '--model', folder, '--port', '0', '--served-model-name', 'cli-model'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no address printed: ${err}`)), 60_000);
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /at (http:\/\/[^\s]+)\/v1/.exec(err);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
    });
    const c = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const r = await c.chat.completions.create({ model: 'cli-model', messages: [{ role: 'user', content: 'hello' }], max_tokens: 3, seed: 1 });
    expect(r.choices[0]!.message.role).toBe('assistant');
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(143);
    expect(err).toMatch(/POST \/v1\/chat\/completions 200/);
  });
});
