#!/usr/bin/env node
// Builds the native addon (and, with CMake, the ctest and benchmark executables).
// - CMake present: cmake-js drives CMakeLists.txt into build/ (offline: Node-API headers come
//   from the node-api-headers package because package.json declares napi_versions).
// - CMake missing: node-gyp builds the CPU-only addon from binding.gyp, into build/ as well;
//   one install uses exactly one of the two, and a tree built by the other is cleaned first.
// Environment: SPPO_CUDA=auto|on|off (default auto), SPPO_CUDA_ARCHS="80;90",
// SPPO_BUILD_JOBS (default: number of cores), SPPO_SKIP_NATIVE=1 to skip entirely.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const build = join(root, 'build');
const marker = join(build, 'sppo-build-system.txt');
const require = createRequire(import.meta.url);

if (process.env.SPPO_SKIP_NATIVE === '1') {
  console.log('sppo-native: SPPO_SKIP_NATIVE=1, not building the native addon');
  process.exit(0);
}

const cuda = (process.env.SPPO_CUDA ?? 'auto').toLowerCase();
if (!['auto', 'on', 'off'].includes(cuda)) {
  console.error(`sppo-native: SPPO_CUDA must be auto, on or off (got '${process.env.SPPO_CUDA}')`);
  process.exit(1);
}
const jobs = Number(process.env.SPPO_BUILD_JOBS ?? cpus().length) || 1;

function has(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

function run(cmd, args, env = process.env) {
  console.log(`sppo-native: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (r.error) throw r.error;
  if (r.status !== 0) process.exit(r.status ?? 1);
}

function switchSystem(system) {
  const previous = existsSync(marker) ? readFileSync(marker, 'utf8').trim() : null;
  if (previous !== null && previous !== system) {
    console.log(`sppo-native: build/ was made by ${previous}; cleaning it for ${system}`);
    rmSync(build, { recursive: true, force: true });
  } else if (previous === null && existsSync(build)) {
    rmSync(build, { recursive: true, force: true });
  }
}

function markSystem(system) {
  writeFileSync(marker, `${system}\n`);
}

const forceGyp = process.env.SPPO_BUILD_SYSTEM === 'gyp';
if (!forceGyp && has('cmake')) {
  switchSystem('cmake-js');
  const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  const args = [cmakeJs, 'build', '--out', 'build', '--parallel', String(jobs), `--CDSPPO_CUDA=${cuda}`];
  if (process.env.SPPO_CUDA_ARCHS) args.push(`--CDSPPO_CUDA_ARCHS=${process.env.SPPO_CUDA_ARCHS}`);
  run(process.execPath, args);
  markSystem('cmake-js');
} else {
  if (cuda === 'on') {
    console.error('sppo-native: SPPO_CUDA=on needs CMake (the binding.gyp build is CPU-only)');
    process.exit(1);
  }
  switchSystem('node-gyp');
  const npmDir = process.env.npm_execpath ? dirname(process.env.npm_execpath) : null;
  const candidates = [
    npmDir && join(npmDir, '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    npmDir && join(npmDir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ].filter((p) => p && existsSync(p));
  if (candidates.length === 0) {
    console.error('sppo-native: neither CMake nor node-gyp was found; install CMake (>= 3.18) to build the addon');
    process.exit(1);
  }
  run(process.execPath, [candidates[0], 'rebuild', `--jobs=${jobs}`]);
  markSystem('node-gyp');
}
