// --rollout-engine openai:<base-url> on the real engine: a run whose rollouts come from
// `sppo-native serve` started per iteration from a command template holds the same samples as a
// run on the engine itself (the server samples each (prompt, k) with its seed, and the text is
// re-tokenized to the same ids); a server the user runs must serve the current policy; the
// server's token counts are checked; bad settings are refused before any work.
import { afterAll, describe, expect, it } from 'vitest';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { train } from '../src/pipeline/pipeline.js';
import { defaultRecipe } from '../src/recipe/fields.js';
import type { Recipe } from '../src/recipe/types.js';
import { DEMO_DIR } from '../src/pipeline/demo.js';
import { readParquet } from '../src/data/parquet.js';
import { loadModel } from '../src/model/engine.js';
import { TextCodec } from '../src/text/codec.js';
import { startServer } from '../src/serve/server.js';
import { parseRolloutEngine, fillCommand } from '../src/openai/servedPolicy.js';
import { OpenAIClient } from '../src/openai/client.js';
import { OpenAIRolloutSource } from '../src/openai/rolloutSource.js';
import type { ResponseSource, Sample, SampleRequest, SampleSettings } from '../src/stages/responseSource.js';
import { writeChatModel } from './helpers/chatModel.js';
import { makeTempDir, testSeed } from './helpers/modelFixtures.js';

const { dir, cleanup } = makeTempDir('sppo-rollout-openai-');
afterAll(cleanup);
const base = writeChatModel(join(dir, 'base'), testSeed('rollout.openai'));
const repo = join(import.meta.dirname, '..');
const bin = join(repo, 'bin', 'sppo-native.js');
const haveDist = existsSync(join(repo, 'dist', 'cli', 'main.js'));

function recipe(name: string, patch: (r: Recipe) => void = () => {}): Recipe {
  const r = defaultRecipe();
  r.model = base;
  r.prompts = [join(DEMO_DIR, 'prompts.jsonl')];
  r.judge = 'builtin:demo';
  r.output = join(dir, name);
  r.iterations = 2;
  r.maxPrompts = 8;
  r.seed = 7;
  r.rollout = { ...r.rollout, k: 3, maxNewTokens: 8, temperature: 1, topP: 0.95, batchSize: 4, shardSize: 4 };
  r.lengths = { ...r.lengths, maxPromptTokens: 32, maxLength: 48 };
  r.sppo.eta = 10;
  r.train = { ...r.train, lr: 5e-4, globalBatch: 4, microBatch: 2, resumeEvery: 10 };
  patch(r);
  return r;
}

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = createNetServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });

/** A source's samples for `requests`, request-major, as the rollout collects them. */
async function sampled(source: ResponseSource, requests: SampleRequest[], s: SampleSettings): Promise<Sample[]> {
  const out: Sample[][] = [];
  await source.sample(requests, s, (j, samples) => { out[j] = samples; });
  return out.flat();
}

async function generated(out: string, t: number): Promise<unknown[]> {
  return (await readParquet(join(out, `iter-${t}`, 'generated.parquet'))).rows;
}

describe.skipIf(!haveDist)('rollouts from sppo-native serve, started per iteration (bin/ over dist/; skipped when dist/ is not built, which `npm test` does first)', () => {
  it('hold the same samples as rollouts on the engine, in every iteration; the server is stopped after each rollout', async () => {
    const native = recipe('native');
    await train(native);
    const port = await freePort();
    const served = recipe('served', (r) => {
      r.rollout.engine = `openai:http://127.0.0.1:${port}/v1`;
      r.rollout.serverCommand = `${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} serve --model {model} --port {port} --quiet`;
      r.rollout.serverStartupSeconds = 60;
    });
    const logs: string[] = [];
    await train(served, { onEvent: (e) => { if (e.type === 'log') logs.push(e.message); } });
    for (const t of [1, 2]) expect(await generated(served.output, t), `iteration ${t}`).toEqual(await generated(native.output, t));
    expect(logs.filter((l) => l.startsWith('rollout engine: starting'))).toHaveLength(2);
    expect(logs.join('\n')).toContain(`serves ${join(served.output, 'iter-1', 'checkpoint-epoch-1')}`);
    expect(readFileSync(join(served.output, 'iter-2', 'rollout-server.log'), 'utf8')).toContain('sppo-native serve');
    await expect(new OpenAIClient(`http://127.0.0.1:${port}`).models(0)).rejects.toThrow(/ECONNREFUSED|fetch failed/);
  });
});

describe('a rollout server the user runs', () => {
  it('must serve the current policy: the base model by its path or ?model= name; iteration 2 needs its checkpoint', async () => {
    const model = await loadModel(base);
    const s = await startServer({ model, codec: TextCodec.load(base), servedModelName: 'my-base', port: 0 });
    try {
      const byName = recipe('by-name', (r) => {
        r.rollout.engine = `openai:${s.url}/v1?model=my-base`;
      });
      await expect(train(byName)).rejects.toThrow(/iteration|serves 'my-base', but this rollout samples from the policy .*iter-1.*checkpoint-epoch-1 .*restart the server/);
      expect(existsSync(join(byName.output, 'iter-1', 'summary.json'))).toBe(true);
      const native = recipe('native-1', (r) => { r.iterations = 1; });
      await train(native);
      expect(await generated(byName.output, 1)).toEqual(await generated(native.output, 1));
      const unnamed = recipe('unnamed', (r) => { r.rollout.engine = `openai:${s.url}`; });
      await expect(train(unnamed)).rejects.toThrow(/serves 'my-base', but this rollout samples from the policy .*base \(the base model: serve it under that path, or name it with \?model=/);
    } finally {
      await s.close();
      model.free();
    }
  });

  it('is checked for its tokenizer: a completion token count the policy’s tokenizer does not make is an error', async () => {
    let answer: unknown = { choices: [{ index: 0, text: 'red blue sky', finish_reason: 'length' }], usage: { completion_tokens: 7 } };
    // Answers n copies of the current answer's choice (the rollout asks for n = K).
    const stub: Server = createHttpServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/v1/models') return res.end(JSON.stringify({ data: [{ id: base }] }));
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const n = Number((JSON.parse(body) as { n?: number }).n ?? 1);
        const a = answer as { choices: object[] };
        res.end(JSON.stringify({ ...a, choices: Array.from({ length: n }, (_, k) => ({ ...a.choices[0], index: k })) }));
      });
    });
    await new Promise<void>((r) => stub.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(stub.address() as { port: number }).port}`;
    try {
      const source = new OpenAIRolloutSource({ client: new OpenAIClient(url), model: base, codec: TextCodec.load(base), window: null });
      await expect(sampled(source, [{ promptIndex: 3, prompt: 'hi', promptTokens: [1, 5], seed: 9 }], { maxNewTokens: 8, temperature: 1, topP: 1, samples: 1 }))
        .rejects.toThrow(/prompt 3 \(seed 9\): the server counts 7 completion tokens, the policy's tokenizer makes 3/);
      await expect(train(recipe('stub', (r) => { r.rollout.engine = `openai:${url}`; r.iterations = 1; }))).rejects.toThrow(/the server counts 7 completion tokens/);
      // Token ids sent beside the text must be the policy tokenizer's ids of that text.
      const codec = TextCodec.load(base);
      answer = { choices: [{ index: 0, text: 'red blue', token_ids: codec.encodeText('green sea'), finish_reason: 'length' }] };
      await expect(sampled(source, [{ promptIndex: 0, prompt: 'hi', promptTokens: [1, 5], seed: 1 }], { maxNewTokens: 8, temperature: 1, topP: 1, samples: 1 }))
        .rejects.toThrow(/the token ids the server sent decode to "green sea".*not to its text "red blue"/);
      answer = { choices: [{ index: 0, text: 'red blue', token_ids: codec.encodeText('red blue'), finish_reason: 'stop' }], usage: { completion_tokens: 3 } };
      const [ok] = await sampled(source, [{ promptIndex: 0, prompt: 'hi', promptTokens: [1, 5], seed: 1 }], { maxNewTokens: 8, temperature: 1, topP: 1, samples: 1 });
      expect(ok).toEqual({ tokens: [...codec.encodeText('red blue'), codec.eosIds[0]], text: 'red blue', finishReason: 'eos' });
    } finally {
      stub.close();
    }
  });

  it('refuses bad engine settings before any work', async () => {
    expect(() => parseRolloutEngine('vllm:http://x')).toThrow(/expected 'native' or 'openai:<base-url>/);
    expect(() => parseRolloutEngine('openai:not a url')).toThrow(/is not a URL/);
    expect(() => parseRolloutEngine('openai:http://h:1/v1?modle=x')).toThrow(/unknown option 'modle'/);
    expect(parseRolloutEngine('openai:http://h:1/v1?model=a')).toEqual({ kind: 'openai', baseUrl: 'http://h:1/v1', model: 'a' });
    expect(() => fillCommand('vllm serve --port {port}', '/m', '1')).toThrow(/must contain \{model\}/);
    expect(fillCommand("serve {model} -p {port}", "/a b/it's", '80')).toBe(`serve '/a b/it'\\''s' -p 80`);
    const r = recipe('bad', (x) => { x.rollout.serverCommand = 'vllm serve {model}'; });
    await expect(train(r)).rejects.toThrow(/rollout.serverCommand is set but rollout.engine is 'native'/);
    expect(existsSync(join(r.output, 'iter-1', 'rollout'))).toBe(false);
    const down = recipe('down', (x) => { x.rollout.engine = 'openai:http://127.0.0.1:9/v1'; x.iterations = 1; });
    await expect(train(down)).rejects.toThrow(/no server answers at http:\/\/127.0.0.1:9\/v1/);
  });
});
