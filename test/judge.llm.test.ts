// The LLM judge (llm:<base-url>?model=...) against `sppo-native serve` on a tiny random chat model
// whose vocabulary holds the answer letters: both orders asked for every pair, P(A) from the
// answer token's logprobs (recomputed here from the model's logits), the text fallback, a valid
// matrix, bad specs refused early, and an SPPO run judged by it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { loadModel, type EngineModel } from '../src/model/engine.js';
import { TextCodec } from '../src/text/codec.js';
import { startServer, type RunningServer } from '../src/serve/server.js';
import { createJudge } from '../src/judge/factory.js';
import { LlmJudge, TOP_LOGPROBS } from '../src/judge/llm.js';
import { parseJudgeSpec } from '../src/judge/spec.js';
import { answerLetter, fillTemplate, DEFAULT_JUDGE_TEMPLATE } from '../src/judge/llmPrompt.js';
import { validateMatrix } from '../src/judge/matrix.js';
import { checkJudgeTarget } from '../src/pipeline/judgeCheck.js';
import { train } from '../src/pipeline/pipeline.js';
import { DEMO_DIR } from '../src/pipeline/demo.js';
import { writeChatModel } from './helpers/chatModel.js';
import { makeTempDir, testSeed } from './helpers/modelFixtures.js';
import { fakeRunRecipe } from './helpers/fakeRun.js';
import { fakeProvider } from './helpers/fakeModel.js';
import { seededRandom } from './sppo.seed.js';

const { dir, cleanup } = makeTempDir('sppo-llmjudge-');
const { rand } = seededRandom('judge.llm');
const WORDS = ['A', 'B', 'red', 'blue', 'green', 'sky', 'sea', 'bird', 'song', 'the', 'is', 'a', 'tell', 'me', 'about'];
const folder = writeChatModel(join(dir, 'judge-model'), testSeed('judge.llm'), [], WORDS);
let server: RunningServer;
let model: EngineModel;
let ref: EngineModel;
let codec: TextCodec;
let requests = 0;

beforeAll(async () => {
  codec = TextCodec.load(folder);
  model = await loadModel(folder);
  ref = await loadModel(folder);
  server = await startServer({ model, codec, servedModelName: 'judge', port: 0, onLog: (l) => { if (l.startsWith('POST /v1/chat/completions 200')) requests++; } });
});
afterAll(async () => {
  await server?.close();
  model?.free();
  ref?.free();
  cleanup();
});

/** P(A | a first, b second), from the model's logits as the judge should read them. */
async function expectedA(prompt: string, a: string, b: string): Promise<number> {
  const ids = codec.encodeChat([{ role: 'user', content: fillTemplate(DEFAULT_JUDGE_TEMPLATE, prompt, a, b) }], true);
  const [logits] = await ref.logits([ids]);
  const V = ref.vocabSize;
  const row = Array.from(logits!.subarray((ids.length - 1) * V, ids.length * V));
  const m = Math.max(...row);
  const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
  const top = [...row.keys()].sort((x, y) => row[y]! - row[x]! || x - y).slice(0, TOP_LOGPROBS);
  let pa = 0;
  let pb = 0;
  for (const id of top) {
    const l = answerLetter(codec.tokenText(id));
    if (l === 'A') pa += Math.exp(row[id]! - lse);
    if (l === 'B') pb += Math.exp(row[id]! - lse);
  }
  expect(pa + pb, 'the letters are among the top logprobs of this vocabulary').toBeGreaterThan(0);
  return pa / (pa + pb);
}

const sentence = (): string => Array.from({ length: 2 + Math.floor(rand() * 5) }, () => WORDS[2 + Math.floor(rand() * (WORDS.length - 2))]).join(' ');

describe('llm: judge on sppo-native serve', () => {
  it('asks both orders of every pair and reads P(A) from the answer logprobs: P_ij = (P(A|i,j) + 1 - P(A|j,i)) / 2', async () => {
    const judge = await createJudge(`llm:${server.url}/v1?model=judge`);
    const k = 3 + Math.floor(rand() * 2);
    const input = { prompt: sentence(), responses: Array.from({ length: k }, sentence) };
    const before = requests;
    const [j] = await judge.judge([input]);
    expect(requests - before).toBe(k * (k - 1));
    validateMatrix(j!.probability, 'llm judge', k);
    expect(j!.scores).toBeNull();
    for (let i = 0; i < k; i++) {
      for (let m = i + 1; m < k; m++) {
        const ab = await expectedA(input.prompt, input.responses[i]!, input.responses[m]!);
        const ba = await expectedA(input.prompt, input.responses[m]!, input.responses[i]!);
        expect(j!.probability[i]![m]).toBeCloseTo((ab + 1 - ba) / 2, 5);
      }
    }
    expect((judge as LlmJudge).counts).toMatchObject({ requests: k * (k - 1), fromLogprobs: k * (k - 1), unreadable: 0 });
    // A position bias cancels: the same pair in the other order gives the complement.
    const [swapped] = await judge.judge([{ prompt: input.prompt, responses: [input.responses[1]!, input.responses[0]!] }]);
    expect(swapped!.probability[0]![1]).toBeCloseTo(j!.probability[1]![0]!, 9);
  });

  it('without logprobs reads the answer letter (greedy): 1, 0, or a tie counted as unreadable', async () => {
    const judge = (await createJudge(`llm:${server.url}?model=judge&logprobs=false`)) as LlmJudge;
    const input = { prompt: sentence(), responses: [sentence(), sentence()] };
    const [j] = await judge.judge([input]);
    const greedy = async (a: string, b: string): Promise<number> => {
      const ids = codec.encodeChat([{ role: 'user', content: judge.message(input.prompt, a, b) }], true);
      const [g] = await ref.generate([ids], [0], { maxNewTokens: 1, temperature: 0, topP: 1, greedy: true, eosTokenIds: codec.eosIds });
      const l = answerLetter(codec.decode(g!.tokens));
      return l === 'A' ? 1 : l === 'B' ? 0 : 0.5;
    };
    const ab = await greedy(input.responses[0]!, input.responses[1]!);
    const ba = await greedy(input.responses[1]!, input.responses[0]!);
    expect(j!.probability[0]![1]).toBe((ab + 1 - ba) / 2);
    expect(judge.counts.fromLogprobs).toBe(0);
    expect(judge.counts.fromText + judge.counts.unreadable).toBe(2);
  });

  it('a custom template is used as written; bad specs are refused before any work', async () => {
    const t = join(dir, 'template.txt');
    writeFileSync(t, 'Q: {prompt}\nA) {response_a}\nB) {response_b}\nBetter, A or B?');
    const judge = (await createJudge(`llm:${server.url}?model=judge&template=${t}`)) as LlmJudge;
    expect(judge.message('p {response_b}', 'x', 'y')).toBe('Q: p {response_b}\nA) x\nB) y\nBetter, A or B?');
    expect(() => checkJudgeTarget(`llm:${server.url}`)).toThrow(/option model=<served model name> is required/);
    expect(() => checkJudgeTarget(`llm:${server.url}?model=m&temp=1`)).toThrow(/unknown option 'temp'/);
    expect(() => checkJudgeTarget('llm:ftp://x?model=m')).toThrow(/only http and https/);
    writeFileSync(t, 'no placeholders');
    expect(() => checkJudgeTarget(`llm:${server.url}?model=m&template=${t}`)).toThrow(/must contain \{prompt\}/);
    expect(parseJudgeSpec(`llm:${server.url}/v1?model=a%20b`).options.model).toBe('a b');
    await expect((await createJudge(`llm:${server.url}?model=other`)).judge([{ prompt: 'x', responses: ['a', 'b'] }])).rejects.toThrow(/HTTP 404.*does not exist/);
  });

  it('judges an SPPO run (fake policy, this judge on the server)', async () => {
    const r = fakeRunRecipe({ root: dir, promptFile: join(DEMO_DIR, 'prompts.jsonl'), maxPrompts: 4, seed: testSeed('judge.llm.run') }, 'run', (x) => {
      x.judge = `llm:${server.url}/v1?model=judge`;
      x.iterations = 1;
    });
    const before = requests;
    const res = await train(r, { provider: fakeProvider() });
    expect(res.iterations[0]!.pairs).toBe(4);
    expect(requests - before).toBe(4 * 3 * 2); // K = 3: 3 pairs, 2 orders, per prompt
  });
});
