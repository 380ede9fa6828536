// Prompt files in every format, the prompt column, dropped rows, splits, Parquet tables, errors.
import { describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { datasetSplits, loadPrompts, parquetShards } from '../src/data/prompts.js';
import { splitDisjoint } from '../src/data/split.js';
import { readParquet, writeParquet } from '../src/data/parquet.js';
import { seededRandom } from './sppo.seed.js';

const dir = mkdtempSync(join(tmpdir(), 'sppo-data-'));
const { rand } = seededRandom('pipeline.data');

function randomWords(n: number): string {
  const words = ['sky', 'red', 'tree', 'why', 'é', '日本', 'a"b', 'line\nbreak', 'x'];
  return Array.from({ length: n }, () => words[Math.floor(rand() * words.length)]).join(' ');
}

// A random prompt set with empty and duplicate rows mixed in; returns the rows and what must survive.
function randomRows(n: number): { rows: (string | null)[]; unique: string[]; empty: number; dup: number } {
  const rows: (string | null)[] = [];
  const unique: string[] = [];
  let empty = 0;
  let dup = 0;
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (r < 0.1) {
      rows.push(rand() < 0.5 ? '' : rand() < 0.5 ? '   ' : null);
      empty++;
    } else if (r < 0.2 && unique.length) {
      rows.push(unique[Math.floor(rand() * unique.length)]!);
      dup++;
    } else {
      const p = `${i} ${randomWords(1 + Math.floor(rand() * 6))}`;
      rows.push(p);
      unique.push(p);
    }
  }
  return { rows, unique, empty, dup };
}

describe('prompt files', () => {
  const { rows, unique, empty, dup } = randomRows(40 + Math.floor(rand() * 40));

  it('reads JSONL, JSON (rows and columns), Parquet and dataset folders alike', async () => {
    const jsonl = join(dir, 'p.jsonl');
    writeFileSync(jsonl, rows.map((p) => JSON.stringify({ id: 1, prompt: p })).join('\n') + '\n\n');
    const json = join(dir, 'p.json');
    writeFileSync(json, JSON.stringify(rows.map((p) => ({ prompt: p }))));
    const jsonCols = join(dir, 'cols.json');
    writeFileSync(jsonCols, JSON.stringify({ prompt: rows, other: rows.map(() => 1) }));
    const pq = join(dir, 'p.parquet');
    writeParquet(pq, [{ name: 'prompt', kind: 'string', data: rows }]);
    const ds = join(dir, 'dataset');
    mkdirSync(join(ds, 'data'), { recursive: true });
    const cut = Math.floor(rows.length / 2);
    writeParquet(join(ds, 'data', 'train-00000-of-00002.parquet'), [{ name: 'prompt', kind: 'string', data: rows.slice(0, cut) }]);
    writeParquet(join(ds, 'data', 'train-00001-of-00002.parquet'), [{ name: 'prompt', kind: 'string', data: rows.slice(cut) }]);
    writeFileSync(join(ds, 'README.md'), '# a dataset card\n');
    expect(parquetShards(ds)).toHaveLength(2);
    for (const f of [jsonl, json, jsonCols, pq, ds]) {
      const set = await loadPrompts(f);
      expect(set.prompts, f).toEqual(unique);
      expect(set.droppedEmpty, f).toBe(empty);
      expect(set.droppedDuplicate, f).toBe(dup);
      expect(set.rows, f).toBe(rows.length);
    }
  });

  it('reads one split of a dataset folder: the asked one, the only one, or train', async () => {
    const ds = join(dir, 'splits');
    mkdirSync(join(ds, 'data'), { recursive: true });
    const cut = 1 + Math.floor(rand() * (unique.length - 2));
    const train = unique.slice(0, cut);
    const test = unique.slice(cut);
    writeParquet(join(ds, 'data', 'train-00000-of-00001.parquet'), [{ name: 'prompt', kind: 'string', data: train }]);
    writeParquet(join(ds, 'data', 'test-00000-of-00001.parquet'), [{ name: 'prompt', kind: 'string', data: test }]);
    expect(datasetSplits(ds).size).toBe(2);
    expect((await loadPrompts(ds)).prompts).toEqual(train); // never the test split mixed in
    expect((await loadPrompts(ds, 'prompt', { splitName: 'test' })).prompts).toEqual(test);
    await expect(loadPrompts(ds, 'prompt', { splitName: 'validation' })).rejects.toThrow(/has no split 'validation'; its splits: test, train; choose one with --prompt-split-name/);
    // The parquet-converter layout (<config>/<split>/0000.parquet), without a train split.
    const conv = join(dir, 'converted');
    for (const [split, rows] of [['test_prefs', test], ['train_prefs', train]] as const) {
      mkdirSync(join(conv, 'default', split), { recursive: true });
      writeParquet(join(conv, 'default', split, '0000.parquet'), [{ name: 'prompt', kind: 'string', data: rows }]);
    }
    await expect(loadPrompts(conv)).rejects.toThrow(/has no split 'train' \(the default when a folder has several splits\); its splits: test_prefs, train_prefs/);
    expect((await loadPrompts(conv, 'prompt', { splitName: 'train_prefs' })).prompts).toEqual(train);
    const one = join(dir, 'one-split');
    mkdirSync(one);
    writeParquet(join(one, 'validation.parquet'), [{ name: 'prompt', kind: 'string', data: test }]);
    expect((await loadPrompts(one)).prompts).toEqual(test);
    const file = join(dir, 'split-file.jsonl');
    writeFileSync(file, '{"prompt": "a"}\n');
    await expect(loadPrompts(file, 'prompt', { splitName: 'train' })).rejects.toThrow(/applies to dataset folders only/);
  });

  it('takes a configurable column and the user turn of chat-message lists', async () => {
    const f = join(dir, 'chat.parquet');
    const chats = unique.map((u) => [{ role: 'user', content: u }, { role: 'assistant', content: 'ok' }]);
    writeParquet(f, [{ name: 'messages', kind: 'messages', data: chats }]);
    expect((await loadPrompts(f, 'messages')).prompts).toEqual(unique);
    const g = join(dir, 'chat.jsonl');
    writeFileSync(g, chats.map((c) => JSON.stringify({ conv: c })).join('\n'));
    expect((await loadPrompts(g, 'conv')).prompts).toEqual(unique);
  });

  it('gives clear errors', async () => {
    await expect(loadPrompts(join(dir, 'nope.jsonl'))).rejects.toThrow(/nope.jsonl does not exist/);
    const cols = join(dir, 'cols2.jsonl');
    writeFileSync(cols, '{"question": "a", "id": 1}\n');
    await expect(loadPrompts(cols)).rejects.toThrow(/has no column 'prompt' \(columns: question, id\)/);
    const empty = join(dir, 'empty.jsonl');
    writeFileSync(empty, '{"prompt": ""}\n{"prompt": "  "}\n');
    await expect(loadPrompts(empty)).rejects.toThrow(/no usable prompts .*2 empty/);
    const none = join(dir, 'none.jsonl');
    writeFileSync(none, '\n');
    await expect(loadPrompts(none)).rejects.toThrow(/has no rows/);
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"prompt": "a"}\n{"prompt": \n');
    await expect(loadPrompts(bad)).rejects.toThrow(/bad.jsonl:2: not valid JSON/);
    const notPq = join(dir, 'fake.parquet');
    writeFileSync(notPq, 'not parquet at all');
    await expect(loadPrompts(notPq)).rejects.toThrow(/fake.parquet is not a readable Parquet file/);
    const ext = join(dir, 'p.csv');
    writeFileSync(ext, 'prompt\na\n');
    await expect(loadPrompts(ext)).rejects.toThrow(/unknown format '.csv'/);
    const emptyDir = join(dir, 'emptyds');
    mkdirSync(emptyDir);
    await expect(loadPrompts(emptyDir)).rejects.toThrow(/has no .parquet files/);
    const wrongType = join(dir, 'num.jsonl');
    writeFileSync(wrongType, '{"prompt": 3}\n');
    await expect(loadPrompts(wrongType)).rejects.toThrow(/row 1: column 'prompt' must hold text/);
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked.jsonl');
      writeFileSync(locked, '{"prompt": "a"}\n');
      chmodSync(locked, 0o000);
      await expect(loadPrompts(locked)).rejects.toThrow(/cannot read prompt file .*locked.jsonl/);
    }
  });
});

describe('splits', () => {
  it('splits into disjoint, covering, seeded parts', () => {
    const n = 3 + Math.floor(rand() * 200);
    const parts = 1 + Math.floor(rand() * 3);
    const prompts = Array.from({ length: n }, (_, i) => `p${i}`);
    const seed = Math.floor(rand() * 1e6);
    const a = splitDisjoint(prompts, parts, seed);
    expect(a).toHaveLength(parts);
    expect(a.flat().sort()).toEqual([...prompts].sort());
    expect(Math.max(...a.map((p) => p.length)) - Math.min(...a.map((p) => p.length))).toBeLessThanOrEqual(1);
    expect(splitDisjoint(prompts, parts, seed)).toEqual(a);
    if (n > 10) expect(splitDisjoint(prompts, parts, seed + 1)).not.toEqual(a);
    expect(() => splitDisjoint(['a'], 3, 1)).toThrow(/cannot split 1 prompts into 3/);
  });
});

describe('parquet tables', () => {
  it('round-trips every column kind', async () => {
    const n = 1 + Math.floor(rand() * 20);
    const k = 2 + Math.floor(rand() * 4);
    const mats = Array.from({ length: n }, () => Array.from({ length: k }, () => Array.from({ length: k }, () => rand())));
    const cols = [
      { name: 'prompt', kind: 'string' as const, data: Array.from({ length: n }, () => randomWords(3)) },
      { name: 'i', kind: 'int' as const, data: Array.from({ length: n }, () => Math.floor(rand() * 1e9)) },
      { name: 'd', kind: 'double' as const, data: Array.from({ length: n }, () => rand() - 0.5) },
      { name: 'ids', kind: 'ints' as const, data: Array.from({ length: n }, () => Array.from({ length: Math.floor(rand() * 5) }, () => Math.floor(rand() * 1000))) },
      { name: 'scores', kind: 'doubles' as const, data: Array.from({ length: n }, (_, i) => (i % 3 === 0 ? null : [rand(), rand()])) },
      { name: 'probability', kind: 'matrix' as const, data: mats },
      { name: 'generate_0', kind: 'messages' as const, data: Array.from({ length: n }, () => [{ role: 'user', content: randomWords(2) }, { role: 'assistant', content: randomWords(4) }]) },
    ];
    const f = join(dir, 'rt.parquet');
    writeParquet(f, cols);
    const t = await readParquet(f);
    expect(t.columns).toEqual(cols.map((c) => c.name));
    cols.forEach((c) => {
      expect(t.rows.map((r) => r[c.name]), c.name).toEqual(
        c.kind === 'messages' ? (c.data as { role: string; content: string }[][]).map((m) => m.map((x) => ({ content: x.content, role: x.role }))) : c.data,
      );
    });
  });
});
