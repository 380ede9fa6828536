#!/usr/bin/env node
// Peak resident memory of loading a model folder and computing sequence log-probabilities (the
// reference-model pass of an SPPO iteration), through the package's public API. Run it from a
// package root (it imports ./dist/index.js there), e.g. before and after a change:
//   node bench/rss_logprobs.mjs <model-folder> [--batch 4] [--seq 256]
// Prints the model's parameter count, the bytes its weights take in fp32, and the peak RSS.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const folder = args[0];
if (!folder) {
  console.error('usage: node bench/rss_logprobs.mjs <model-folder> [--batch B] [--seq T]');
  process.exit(2);
}
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const B = opt('--batch', 4), T = opt('--seq', 256);
const api = await import(pathToFileURL(resolve('dist/index.js')).href);
const before = process.memoryUsage().rss;
const model = await api.loadModel(folder);
const seqs = Array.from({ length: B }, (_, b) => ({
  tokens: Array.from({ length: T }, (_, t) => (b * 7919 + t * 104729) % model.vocabSize),
  promptLength: T / 4,
}));
const lp = await model.sequenceLogprobs(seqs);
const params = model.parameters().reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
const peak = process.resourceUsage().maxRSS * 1024;
console.log(JSON.stringify({
  parameters: params,
  weightBytesFp32: params * 4,
  rssBeforeLoad: before,
  peakRss: peak,
  logprobs: Array.from(lp).map((x) => Number(x.toFixed(3))),
}));
model.free();
