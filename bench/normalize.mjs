#!/usr/bin/env node
// Throughput of tokenizer.json normalization (src/text/tokenizerJson.ts): the exact charsmap and
// Strip that sppo-native applies, beside @huggingface/tokenizers' own approximation, on about a
// million UTF-16 units each of English, Chinese, Korean and mixed text (marks, emoji sequences,
// ligatures, full-width forms). Median of the rounds after a warm-up; both are checked to agree
// on plain English. The default tokenizer is the DeBERTa-v3-shaped fixture with SentencePiece's
// nmt_nfkc charsmap (test/fixtures/charsmap); --tokenizer takes any tokenizer.json.
// Usage: node bench/normalize.mjs [--rounds 5] [--tokenizer FILE]   (needs `npm run build:ts`)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import { Tokenizer } from '@huggingface/tokenizers';
import { openTokenizerJson } from '../dist/text/tokenizerJson.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, tokenizer: { type: 'string' } } });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer (got ${values.rounds})`);
const file = values.tokenizer ?? join(import.meta.dirname, '..', 'test', 'fixtures', 'charsmap', 'tokenizer.json.gz');
const raw = readFileSync(file);
const json = () => JSON.parse((file.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8'));
const exact = openTokenizerJson(json(), {}, file);
const approx = new Tokenizer(json(), {});
if (!exact.normalizer || !approx.normalizer) throw new Error(`${file} has no normalizer to measure`);

const texts = {
  english: 'The quick brown fox jumps over the lazy dog, and then it answers the question. '.repeat(12500),
  chinese: '我们今天讨论自我博弈偏好优化的算法，它在每一轮中采样多个回答。'.repeat(30000),
  korean: '한국어 문장은 띄어쓰기가 있습니다 그리고 계속됩니다. '.repeat(30000),
  mixed: 'Café naïve 東京 한국어 ﬁne ①② 😀 👨‍👩‍👧 Ａｂｃ क्ष text. '.repeat(20000),
};
if (exact.normalizer(texts.english) !== approx.normalizer(texts.english)) throw new Error('the two normalizers disagree on plain English');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const time = (f, t) => {
  const t0 = performance.now();
  f(t);
  return performance.now() - t0;
};
console.log(`normalize, ${file}, median of ${rounds} rounds (ns per UTF-16 unit)`);
console.log('| text | units | exact | library | exact / library |');
console.log('|---|---|---|---|---|');
for (const [name, t] of Object.entries(texts)) {
  const e = [], a = [];
  time(exact.normalizer, t);
  time(approx.normalizer, t);
  for (let r = 0; r < rounds; r++) {
    e.push(time(exact.normalizer, t));
    a.push(time(approx.normalizer, t));
  }
  const ns = (ms) => (ms * 1e6) / t.length;
  console.log(`| ${name} | ${(t.length / 1e6).toFixed(2)}M | ${ns(median(e)).toFixed(0)} | ${ns(median(a)).toFixed(0)} | ${(median(e) / median(a)).toFixed(1)} |`);
}
