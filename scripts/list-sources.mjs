#!/usr/bin/env node
// Prints the CPU core and addon sources for binding.gyp (which cannot glob by itself): the same
// set CMakeLists.txt compiles when CUDA is off.
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const skip = new Set(['tests', 'bench']);
const out = [];
function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (dir === join(root, 'native') && skip.has(name)) continue;
      walk(p);
    } else if (name.endsWith('.cpp')) {
      out.push(relative(root, p));
    }
  }
}
walk(join(root, 'native'));
console.log(out.join(' '));
