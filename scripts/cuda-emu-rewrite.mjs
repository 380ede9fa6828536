#!/usr/bin/env node
// The emulated CUDA build's one source transformation (native/emu/, SPPO_CUDA=emulate): turns a
// kernels/cuda/*.cu file into C++ the host compiler takes. Two constructs are not C++:
//   kernel<targs><<<grid, block, smem, stream>>>(args)
//     -> ::sppo_emu::launch(::sppo_emu::LaunchConfig(grid, block, smem, stream), "kernel<targs>", kernel<targs>, args)
//   extern __shared__ T name[];
//     -> T* name = ::sppo_emu::dynamic_shared<T>();
// Everything else (qualifiers, intrinsics, the runtime API) is declared by native/emu/. Line
// breaks are kept, so compiler messages point at the .cu's own lines (a #line names the file).
// Usage: node scripts/cuda-emu-rewrite.mjs <in.cu> <out.cpp>
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

export function rewrite(src, file = 'input.cu') {
  let out = '';
  let i = 0;
  const launch = /<<</g;
  let m;
  while ((m = launch.exec(src)) !== null) {
    const at = m.index;
    const kernel = kernelBefore(src, at);
    if (!kernel) throw new Error(`${file}: no kernel name before '<<<' at offset ${at}`);
    const close = src.indexOf('>>>', at);
    if (close < 0) throw new Error(`${file}: '<<<' without '>>>' at offset ${at}`);
    const config = src.slice(at + 3, close);
    let j = close + 3;
    while (/\s/.test(src[j])) ++j;
    if (src[j] !== '(') throw new Error(`${file}: a launch without arguments after '>>>' at offset ${close}`);
    let k = j + 1;
    while (/\s/.test(src[k])) ++k;
    const noArgs = src[k] === ')';
    const line = src.slice(0, at).split('\n').length;
    const name = `${basename(file)}:${line} ${kernel.text.replace(/\s+/g, ' ')}`;
    // A kernel template named without its arguments has no address until they are deduced.
    const deduced = !kernel.text.includes('<') && isTemplateKernel(src, kernel.text);
    const addr = deduced ? 'nullptr' : `reinterpret_cast<const void*>(${kernel.text})`;
    out += src.slice(i, kernel.start);
    out += `::sppo_emu::launch(::sppo_emu::LaunchConfig(${config}), ${JSON.stringify(name)}, ${addr}, ` +
      `[=](auto&... sppo_emu_a) { ${kernel.text}(sppo_emu_a...); }${noArgs ? '' : ', '}`;
    // Keep the line count: the config may span lines.
    i = j + 1;
    launch.lastIndex = i;
  }
  out += src.slice(i);
  out = out.replace(/extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?([A-Za-z_][\w:]*)\s+(?:__align__\(\d+\)\s+)?([A-Za-z_]\w*)\s*\[\s*\]\s*;/g,
    (_, type, name) => `${type}* ${name} = ::sppo_emu::dynamic_shared<${type}>();`);
  return `#line 1 ${JSON.stringify(file)}\n${out}`;
}

// Whether `name` is declared in this file as a __global__ function template.
function isTemplateKernel(src, name) {
  const decl = new RegExp(`template\\s*<[^;{}]*>\\s*__global__[^;{}]*?\\b${name}\\s*\\(`);
  return decl.test(src);
}

// The kernel expression ending right before `at`: an identifier, optionally qualified, optionally
// with a template argument list (balanced angle brackets).
function kernelBefore(src, at) {
  let e = at;
  while (e > 0 && /\s/.test(src[e - 1])) --e;
  let s = e;
  if (src[s - 1] === '>') {
    let depth = 0;
    for (s = e - 1; s >= 0; --s) {
      if (src[s] === '>') ++depth;
      else if (src[s] === '<') {
        if (--depth === 0) break;
      } else if (src[s] === ';' || src[s] === '{' || src[s] === '}') return null;
    }
    if (s < 0) return null;
  }
  while (s > 0 && /[\w:]/.test(src[s - 1])) --s;
  const text = src.slice(s, e);
  if (!/^[A-Za-z_:]/.test(text)) return null;
  return { start: s, text };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const [input, output] = process.argv.slice(2);
  if (!input || !output) {
    console.error('usage: node scripts/cuda-emu-rewrite.mjs <in.cu> <out.cpp>');
    process.exit(2);
  }
  try {
    const text = rewrite(readFileSync(input, 'utf8'), input);
    mkdirSync(dirname(output), { recursive: true });
    writeFileSync(output, text);
  } catch (err) {
    console.error(`cuda-emu-rewrite: ${input} -> ${output}: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}
