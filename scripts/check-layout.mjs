#!/usr/bin/env node
// The layout rule of DESIGN.md ("One op, one contract"), checked so that it stays true as ops are
// added. Run by `npm test` after the native build.
//   node scripts/check-layout.mjs [ROOT]      (ROOT: a checkout; default: this one)
//
// Every header in native/kernels/ is one of:
//   - a math header, named <name>_math.h (per-element math shared by the CPU and CUDA twins);
//   - an op contract: its text names CONTRACT (by convention in its first comment, which says
//     what the op computes). Op <op> then needs native/kernels/cpu/<op>.cpp (the CPU reference),
//     native/tests/test_<op>.cpp (its ctest suite) and native/bench/bench_<op>.cpp (its benchmark).
// A header that is neither is an error (name it *_math.h, or make it a contract, or move it), so
// that no op slips past the rule by leaving the word out. Every native/kernels/cuda/<op>.cu needs
// native/tests/test_<op>_cuda.cpp, and every cpu/<op>.cpp or cuda/<op>.cu needs its contract.
// Prints what is missing, by path, and exits 1; exits 0 when the layout holds.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log('usage: node scripts/check-layout.mjs [ROOT]\n' +
    'Checks that every op contract native/kernels/<op>.h has kernels/cpu/<op>.cpp, tests/test_<op>.cpp and\n' +
    'bench/bench_<op>.cpp, and every kernels/cuda/<op>.cu has tests/test_<op>_cuda.cpp (see the comment at the\n' +
    'top of this script for the rule). ROOT defaults to this checkout.');
  process.exit(0);
}
if (args.length > 1) {
  console.error(`check-layout: expected at most one argument, the checkout to check (got ${args.length})`);
  process.exit(2);
}
const root = resolve(args[0] ?? here);
const kernels = join(root, 'native', 'kernels');
if (!existsSync(kernels) || !statSync(kernels).isDirectory()) {
  console.error(`check-layout: ${join(root, 'native', 'kernels')} is not a folder; is ${root} a checkout of sppo-native?`);
  process.exit(2);
}

const rel = (...parts) => join('native', ...parts);
const exists = (p) => existsSync(join(root, p));
const files = (dir, ext) =>
  existsSync(join(root, dir)) ? readdirSync(join(root, dir)).filter((f) => f.endsWith(ext)).sort() : [];

const problems = [];
const contracts = [];
for (const header of files(rel('kernels'), '.h')) {
  const name = header.slice(0, -2);
  if (name.endsWith('_math')) continue;
  const text = readFileSync(join(kernels, header), 'utf8');
  if (!/\bCONTRACT\b/.test(text)) {
    problems.push(`${rel('kernels', header)} is neither an op contract (its comment names CONTRACT) ` +
      'nor a math header (*_math.h)');
    continue;
  }
  contracts.push(name);
  const needs = [
    [rel('kernels', 'cpu', `${name}.cpp`), 'CPU implementation'],
    [rel('tests', `test_${name}.cpp`), 'test'],
    [rel('bench', `bench_${name}.cpp`), 'benchmark'],
  ];
  for (const [path, what] of needs)
    if (!exists(path)) problems.push(`missing ${path} (the ${what} of the op contract ${rel('kernels', header)})`);
}
const isContract = new Set(contracts);
for (const src of files(rel('kernels', 'cpu'), '.cpp')) {
  const name = src.slice(0, -4);
  if (!isContract.has(name))
    problems.push(`${rel('kernels', 'cpu', src)} has no op contract ${rel('kernels', `${name}.h`)}`);
}
const cudaKernels = files(rel('kernels', 'cuda'), '.cu');
for (const cu of cudaKernels) {
  const name = cu.slice(0, -3);
  if (!isContract.has(name))
    problems.push(`${rel('kernels', 'cuda', cu)} has no op contract ${rel('kernels', `${name}.h`)}`);
  const test = rel('tests', `test_${name}_cuda.cpp`);
  if (!exists(test)) problems.push(`missing ${test} (the GPU test of ${rel('kernels', 'cuda', cu)})`);
}

if (problems.length) {
  console.error('check-layout: the layout rule (DESIGN.md, "One op, one contract") does not hold:');
  for (const p of problems) console.error(`  - ${p}`);
  process.exit(1);
}
console.log(`check-layout: ${contracts.length} op contracts, each with its CPU implementation, test and benchmark; ` +
  `${cudaKernels.length} CUDA kernels, each with its GPU test`);
