// Benchmark exports on a tiny chat model and the real engine: AlpacaEval's model_outputs.json,
// FastChat's MT-Bench answers (two turns, per-category temperatures) and Arena-Hard's (v0.1 and
// v2 question files), each answer the engine's own seeded sample of the conversation so far; the
// decoding settings beside them; an interrupted export resuming to the same file; bad question
// files refused by line; and the CLI command.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportBenchmark, defaultModelId } from '../src/export/exportAnswers.js';
import { readQuestions } from '../src/export/questions.js';
import { nativeEngine, type ModelProvider } from '../src/pipeline/modelProvider.js';
import { loadModel } from '../src/model/engine.js';
import { TextCodec } from '../src/text/codec.js';
import { answerSeed } from '../src/stages/seeds.js';
import { writeChatModel } from './helpers/chatModel.js';
import { makeTempDir, testSeed } from './helpers/modelFixtures.js';

const { dir, cleanup } = makeTempDir('sppo-export-');
afterAll(cleanup);
const folder = writeChatModel(join(dir, 'model'), testSeed('export.benchmarks'));
const codec = TextCodec.load(folder);
const file = (name: string, text: string): string => {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
};
const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

async function engine(messages: { role: string; content: string }[], seed: number, temperature: number, topP: number, maxNew: number): Promise<{ text: string; tokens: number[] }> {
  const m = await loadModel(folder);
  try {
    const [g] = await m.generate([codec.encodeChat(messages, true)], [seed], { maxNewTokens: maxNew, temperature, topP, greedy: temperature === 0, eosTokenIds: codec.eosIds });
    return { text: codec.decode(g!.tokens), tokens: g!.tokens };
  } finally {
    m.free();
  }
}

const alpaca = file('alpaca_eval.json', JSON.stringify([
  { instruction: 'tell me about the sky', output: 'reference', generator: 'gpt4', dataset: 'helpful_base' },
  { instruction: 'write a song about a red bird', dataset: 'oasst' },
  { instruction: 'what is a good day ?', dataset: 'vicuna' },
  { instruction: 'name some blue things', dataset: 'koala' },
  { instruction: 'describe the sea', dataset: 'selfinstruct' },
]));

describe('export alpaca-eval', () => {
  it("writes model_outputs.json (instruction, output, generator, dataset) with the engine's seeded samples, and the decoding beside it", async () => {
    const out = join(dir, 'alpaca');
    const logs: string[] = [];
    const r = await exportBenchmark({ benchmark: 'alpaca-eval', model: folder, prompts: alpaca, output: out, modelId: 'tiny', maxNewTokens: 12, batchSize: 2, onEvent: (e) => { if (e.type === 'log') logs.push(e.message); } });
    expect(r.file).toBe(join(out, 'model_outputs.json'));
    const rows = JSON.parse(readFileSync(r.file, 'utf8')) as { instruction: string; output: string; generator: string; dataset: string }[];
    expect(rows.map((x) => x.instruction)).toEqual(['tell me about the sky', 'write a song about a red bird', 'what is a good day ?', 'name some blue things', 'describe the sea']);
    expect(rows.map((x) => x.dataset)).toEqual(['helpful_base', 'oasst', 'vicuna', 'koala', 'selfinstruct']);
    expect(new Set(rows.map((x) => x.generator))).toEqual(new Set(['tiny']));
    for (let i = 0; i < rows.length; i++) {
      expect(rows[i]!.output).toBe((await engine([{ role: 'user', content: rows[i]!.instruction }], answerSeed(i, 0, 42), 0.7, 0.9, 12)).text);
    }
    const dec = JSON.parse(readFileSync(join(out, 'decoding.json'), 'utf8')) as Record<string, unknown>;
    expect(dec).toMatchObject({ benchmark: 'alpaca-eval', modelId: 'tiny', temperature: 0.7, topP: 0.9, maxNewTokens: 12, seed: 42, questions: 5 });
    expect(readdirSync(out).sort()).toEqual(['decoding.json', 'model_outputs.json']);
    // The default 2048 new tokens do not fit the tiny model's 256-token context: cut, and said.
    await exportBenchmark({ benchmark: 'alpaca-eval', model: folder, prompts: alpaca, output: join(dir, 'alpaca-long'), maxPrompts: 1, onEvent: (e) => { if (e.type === 'log') logs.push(e.message); } });
    expect(logs.join('\n')).toMatch(/had fewer than 2048 new tokens of room in the model's context \(256\)/);
  });

  it('resumes an interrupted export to the same file, and refuses to mix decoding settings', async () => {
    const whole = join(dir, 'alpaca-whole');
    await exportBenchmark({ benchmark: 'alpaca-eval', model: folder, prompts: alpaca, output: whole, modelId: 'tiny', maxNewTokens: 10, batchSize: 2 });
    let calls = 0;
    const failing: ModelProvider = {
      ...nativeEngine,
      async load(f, d) {
        const m = await nativeEngine.load(f, d);
        const gen = m.generate.bind(m);
        m.generate = async (...a) => {
          if (++calls === 2) throw new Error('killed');
          return gen(...a);
        };
        return m;
      },
    };
    const out = join(dir, 'alpaca-resumed');
    const o = { benchmark: 'alpaca-eval' as const, model: folder, prompts: alpaca, output: out, modelId: 'tiny', maxNewTokens: 10, batchSize: 2 };
    await expect(exportBenchmark({ ...o, provider: failing })).rejects.toThrow('killed');
    expect(existsSync(join(out, 'model_outputs.json'))).toBe(false);
    expect(readFileSync(join(out, '.model_outputs.json.partial.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);
    await expect(exportBenchmark({ ...o, temperature: 1 })).rejects.toThrow(/made with other options: temperature \(was 0.7, now 1\)/);
    await exportBenchmark(o);
    expect(readFileSync(join(out, 'model_outputs.json'), 'utf8')).toBe(readFileSync(join(whole, 'model_outputs.json'), 'utf8'));
    expect(existsSync(join(out, '.model_outputs.json.partial.jsonl'))).toBe(false);
  });
});

describe('export mt-bench and arena-hard', () => {
  it("mt-bench: FastChat answers, turn 2 answered after turn 1's answer, temperatures per category", async () => {
    const q = file('mt_question.jsonl', jsonl([
      { question_id: 81, category: 'writing', turns: ['write a song about the sea', 'now make it about the sky'] },
      { question_id: 111, category: 'math', turns: ['what is a good day ?', 'and a bad day ?'] },
    ]));
    const out = join(dir, 'mt');
    const r = await exportBenchmark({ benchmark: 'mt-bench', model: folder, prompts: q, output: out, modelId: 'tiny-mt', maxNewTokens: 8 });
    expect(r.file).toBe(join(out, 'tiny-mt.jsonl'));
    const lines = readFileSync(r.file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { question_id: number; answer_id: string; model_id: string; choices: { index: number; turns: string[] }[]; tstamp: number });
    expect(lines.map((l) => l.question_id)).toEqual([81, 111]);
    expect(lines[0]).toMatchObject({ model_id: 'tiny-mt', choices: [{ index: 0 }] });
    expect(lines[0]!.answer_id).toMatch(/^[\w-]{22}$/);
    expect(lines[0]!.tstamp).toBeGreaterThan(1e9);
    const temps = [0.7, 0]; // writing, math
    for (const [i, l] of lines.entries()) {
      const qs = i === 0 ? ['write a song about the sea', 'now make it about the sky'] : ['what is a good day ?', 'and a bad day ?'];
      const a1 = await engine([{ role: 'user', content: qs[0]! }], answerSeed(i, 0, 42), temps[i]!, 1, 8);
      const a2 = await engine([{ role: 'user', content: qs[0]! }, { role: 'assistant', content: a1.text }, { role: 'user', content: qs[1]! }], answerSeed(i, 1, 42), temps[i]!, 1, 8);
      expect(l.choices[0]!.turns).toEqual([a1.text, a2.text]);
    }
    const dec = JSON.parse(readFileSync(join(out, 'tiny-mt.decoding.json'), 'utf8')) as { temperature: { byCategory: Record<string, number>; default: number } };
    expect(dec.temperature.byCategory).toMatchObject({ writing: 0.7, math: 0, stem: 0.1 });
  });

  it('arena-hard: v0.1 and v2 question files, turns with token_len, greedy by default', async () => {
    const v01 = file('ah01.jsonl', jsonl([{ question_id: 'abc123', category: 'arena-hard-v0.1', cluster: 'c', turns: [{ content: 'tell me about the red sky' }] }]));
    const v2 = file('ah2.jsonl', jsonl([{ uid: 'u1', category: 'hard_prompt', subcategory: 's', prompt: 'tell me about the red sky' }]));
    const a = await exportBenchmark({ benchmark: 'arena-hard', model: folder, prompts: v01, output: join(dir, 'ah01'), modelId: 'tiny-ah', maxNewTokens: 9, seed: 1 });
    const b = await exportBenchmark({ benchmark: 'arena-hard', model: folder, prompts: v2, output: join(dir, 'ah2'), modelId: 'tiny-ah', maxNewTokens: 9, seed: 2 });
    const la = JSON.parse(readFileSync(a.file, 'utf8')) as { question_id: string; choices: { turns: { content: string; token_len: number }[] }[] };
    const lb = JSON.parse(readFileSync(b.file, 'utf8')) as { question_id: string; choices: { turns: { content: string; token_len: number }[] }[] };
    expect([la.question_id, lb.question_id]).toEqual(['abc123', 'u1']);
    const want = await engine([{ role: 'user', content: 'tell me about the red sky' }], 0, 0, 1, 9);
    expect(la.choices[0]!.turns[0]!.content).toBe(want.text);
    expect(lb.choices[0]!.turns[0]!.content).toBe(want.text); // greedy: the seed does not matter
    const eos = codec.eosIds.includes(want.tokens[want.tokens.length - 1]!) ? 1 : 0;
    expect(la.choices[0]!.turns[0]!.token_len).toBe(want.tokens.length - eos);
  });

  it('refuses bad question files by line and field', () => {
    expect(() => readQuestions('mt-bench', file('b1.jsonl', '{"question_id": 1, "turns": ["x"]}\n{oops\n'))).toThrow(/b1.jsonl, line 2: not valid JSON/);
    expect(() => readQuestions('mt-bench', file('b2.jsonl', jsonl([{ category: 'x', turns: ['a'] }])))).toThrow(/question 1: no question_id \(or uid\)/);
    expect(() => readQuestions('arena-hard', file('b3.jsonl', jsonl([{ question_id: 1, turns: ['a'] }, { question_id: 1, turns: ['b'] }])))).toThrow(/question 2: question_id 1 appears twice/);
    expect(() => readQuestions('mt-bench', file('b4.jsonl', jsonl([{ question_id: 1, turns: [''] }])))).toThrow(/turns\[0\] must be a non-empty string/);
    expect(() => readQuestions('alpaca-eval', file('b5.json', JSON.stringify([{ prompt: 'x' }])))).toThrow(/no 'instruction' field \(fields: prompt\)/);
    expect(() => readQuestions('alpaca-eval', file('b6.json', '[]'))).toThrow(/holds no questions/);
  });

  it('names checkpoints of a run after the run and iteration', () => {
    expect(defaultModelId('/x/runs/m7b/iter-3/checkpoint-epoch-1')).toBe('m7b-iter3');
    expect(defaultModelId('/x/runs/m7b/iter-2/checkpoint-epoch-2')).toBe('m7b-iter2-epoch2');
    expect(defaultModelId('/models/Mistral-7B-Instruct-v0.2/')).toBe('Mistral-7B-Instruct-v0.2');
  });
});

const repo = join(import.meta.dirname, '..');
const haveDist = existsSync(join(repo, 'dist', 'cli', 'main.js'));
describe.skipIf(!haveDist)('the export command (bin/ over dist/; skipped when dist/ is not built, which `npm test` does first)', () => {
  it('exports mt-bench answers into a folder, printing where; bad flags are refused', () => {
    const q = file('cli_q.jsonl', jsonl([{ question_id: 1, category: 'stem', turns: ['what is the sky ?'] }]));
    const run = (args: string[]) => spawnSync(process.execPath, [join(repo, 'bin', 'sppo-native.js'), 'export', ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, SPPO_NO_PROGRESS: '1' } });
    const ok = run(['mt-bench', '--model', folder, '--prompts', q, '--max-new-tokens', '4']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(join(dir, 'exports', 'mt-bench', 'model', 'model.jsonl'));
    expect(existsSync(join(dir, 'exports', 'mt-bench', 'model', 'model.decoding.json'))).toBe(true);
    const bad = run(['mt-bench', '--model', folder, '--prompts', q, '--top-p', '2']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--top-p must be in \(0, 1\]/);
    const which = run(['gsm8k', '--model', folder, '--prompts', q]);
    expect(which.status).toBe(1);
    expect(which.stderr).toMatch(/Invalid values:[\s\S]*gsm8k/);
  });
});
