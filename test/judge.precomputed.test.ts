// Precomputed judgments: JSONL, JSON and Parquet (including the reference pipeline's generated
// train.parquet layout), keyed by prompt or index, with clear errors for every mismatch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import { createJudge } from '../src/judge/factory.js';
import { matrixFromScores, sigmoid } from '../src/judge/matrix.js';
import { seededRandom } from './sppo.seed.js';

let dir = '';
beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'sppo-precomputed-'))));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, text: string) => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};
const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

describe('precomputed judge', () => {
  it('reads scores from JSONL keyed by prompt (tau applies), and a matrix from JSON keyed by index', async () => {
    const { rand } = seededRandom('precomputed');
    const prompts = Array.from({ length: 5 }, (_, i) => `prompt ${i}: ${rand().toString(36)}`);
    const scores = prompts.map(() => Array.from({ length: 4 }, () => (rand() - 0.5) * 6));
    const file = write('s.jsonl', jsonl(prompts.map((prompt, i) => ({ prompt, scores: scores[i] }))));
    const judge = await createJudge(`precomputed:${file}?tau=2`);
    const out = await judge.judge([3, 0, 4].map((i) => ({ prompt: prompts[i]!, responses: ['a', 'b', 'c', 'd'] })));
    out.forEach((j, b) => {
      const s = scores[[3, 0, 4][b]!]!;
      expect(j.scores).toEqual(s);
      j.probability.forEach((row, i) => row.forEach((v, k) => expect(v).toBeCloseTo(i === k ? 0.5 : sigmoid((s[i]! - s[k]!) / 2), 14)));
    });

    const P = matrixFromScores([0.1, 2, -1]);
    const byIndex = write('m.json', JSON.stringify([{ index: 7, probability: P }]));
    const j2 = await createJudge(`precomputed:${byIndex}`);
    const [r] = await j2.judge([{ prompt: 'whatever', responses: ['x', 'y', 'z'], index: 7 }]);
    expect(r).toEqual({ probability: P, scores: null });
    await expect(j2.judge([{ prompt: 'whatever', responses: ['x', 'y', 'z'], index: 8 }])).rejects.toThrow(
      /precomputed judge file .*m\.json has no entry for index 8 or prompt "whatever"/,
    );
  });

  it('reads the reference layout from Parquet: prompt, generate_i message lists, probability, rm_scores', async () => {
    const file = join(dir, 'ref.parquet');
    const conv = (p: string, r: string) => [
      { content: p, role: 'user' },
      { content: r, role: 'assistant' },
    ];
    const s = [
      [1.5, -0.25],
      [0, 3.25],
    ];
    parquetWriteFile({
      filename: file,
      columnData: [
        { name: 'prompt', data: ['p0', 'p1'] },
        { name: 'generate_0', data: [conv('p0', 'a0'), conv('p1', 'b0')] },
        { name: 'generate_1', data: [conv('p0', 'a1'), conv('p1', 'b1')] },
        { name: 'probability', data: s.map((x) => matrixFromScores(x)) },
        { name: 'rm_scores', data: s },
      ],
    });
    const judge = await createJudge(`precomputed:${file}`);
    const [a, b] = await judge.judge([
      { prompt: 'p1', responses: ['b0', 'b1'] },
      { prompt: 'p0', responses: ['a0', 'a1'] },
    ]);
    expect(a).toEqual({ probability: matrixFromScores(s[1]!), scores: s[1] });
    expect(b!.scores).toEqual(s[0]);
    await expect(judge.judge([{ prompt: 'p0', responses: ['a0', 'other'] }])).rejects.toThrow(
      /ref\.parquet, row 0: its responses differ from the ones being judged for prompt "p0" \(a file made for another rollout\?\)/,
    );
  });

  it('gives clear errors for bad files and mismatches', async () => {
    const j = await createJudge(`precomputed:${write('ok.jsonl', jsonl([{ prompt: 'p', scores: [1, 2] }]))}`);
    await expect(j.judge([{ prompt: 'p', responses: ['a', 'b', 'c'] }])).rejects.toThrow(/ok\.jsonl, line 1: has a judgment of 2 responses, but 3 are being judged for prompt "p"/);
    await expect(j.judge([{ prompt: 'missing prompt', responses: ['a', 'b'] }])).rejects.toThrow(/ok\.jsonl has no entry for prompt "missing prompt"/);

    const bad: [string, string, RegExp][] = [
      ['nan.jsonl', '{"prompt":"p","scores":[1,null]}\n', /nan\.jsonl, line 1: scores\[1\] is not a finite number \(got null\)/],
      ['broken.jsonl', '{"prompt":"p","scores":[1,2]}\n{"prompt": oops}\n', /broken\.jsonl, line 2 is not valid JSON/],
      ['nokey.jsonl', '{"scores":[1,2]}\n', /nokey\.jsonl, line 1: needs a "prompt" or an "index"/],
      ['nojudgment.jsonl', '{"prompt":"p"}\n', /nojudgment\.jsonl, line 1: has neither "probability" nor "scores"\/"rm_scores"/],
      ['matrix.jsonl', '{"prompt":"p","probability":[[0.5,0.6],[0.6,0.5]]}\n', /matrix\.jsonl, line 1: probability\[0\]\[1\] \+ probability\[1\]\[0\] = 1\.2/],
      ['dup.json', '[{"index":1,"scores":[1]},{"index":1,"scores":[2]}]', /dup\.json: index 1 appears at record 0 and record 1/],
      ['empty.jsonl', '\n', /empty\.jsonl holds no records/],
      ['notarray.json', '{"prompt":"p"}', /notarray\.json: a \.json file must hold an array of records/],
      ['fake.parquet', 'not parquet at all', /fake\.parquet could not be read as Parquet/],
      ['table.csv', 'a,b\n', /table\.csv: unsupported extension '\.csv' \(use \.jsonl, \.json or \.parquet\)/],
    ];
    for (const [name, text, msg] of bad) await expect(createJudge(`precomputed:${write(name, text)}`)).rejects.toThrow(msg);
    await expect(createJudge(`precomputed:${join(dir, 'absent.jsonl')}`)).rejects.toThrow(/precomputed judge file .*absent\.jsonl could not be read: ENOENT/);
  });

  it('tells repeated prompts apart by their responses, or says to key by index', async () => {
    const file = write('rep.jsonl', jsonl([
      { prompt: 'p', responses: ['a', 'b'], scores: [1, 0] },
      { prompt: 'p', responses: ['c', 'd'], scores: [0, 1] },
    ]));
    const j = await createJudge(`precomputed:${file}`);
    const [x] = await j.judge([{ prompt: 'p', responses: ['c', 'd'] }]);
    expect(x!.scores).toEqual([0, 1]);
    await expect(j.judge([{ prompt: 'p', responses: ['e', 'f'] }])).rejects.toThrow(/prompt "p" appears 2 times \(line 1, line 2\); key the records by "index" or include "responses"/);
  });
});
