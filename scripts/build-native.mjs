#!/usr/bin/env node
// Builds the native addon (and, with CMake, the ctest and benchmark executables).
// - CMake present: cmake-js drives CMakeLists.txt into build/ (offline: Node-API headers come
//   from the node-api-headers package because package.json declares napi_versions).
// - CMake missing: node-gyp builds the CPU-only addon from binding.gyp, into build/ as well;
//   one install uses exactly one of the two, and a tree built by the other is cleaned first.
// Environment: SPPO_CUDA=auto|on|off (default auto), SPPO_CUDA_ARCHS="80;90",
// SPPO_BUILD_JOBS (default: number of cores), SPPO_SKIP_NATIVE=1 to skip entirely.
// --force starts from an empty build/ (after changing compilers, CUDA toolkits or options that
// CMake caches); without it the build is incremental.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, homedir, tmpdir } from 'node:os';
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

if (process.argv.includes('--force')) rmSync(build, { recursive: true, force: true });

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

// node-gyp downloads Node headers from nodejs.org unless told where they are. Offline order:
// npm's nodedir setting; headers installed beside this Node (/usr/include/node and the like);
// node-gyp's own cache; else a header folder made from the node-api-headers package (the addon
// uses Node-API only) with a minimal common.gypi (SPPO_GYP_NODEDIR=node-api-headers forces this).
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const version = process.versions.node;
  const hasHeaders = (prefix) => {
    try {
      const h = readFileSync(join(prefix, 'include', 'node', 'node_version.h'), 'utf8');
      const v = ['MAJOR', 'MINOR', 'PATCH'].map((k) => h.match(new RegExp(`define NODE_${k}_VERSION (\\d+)`))?.[1]);
      return v.join('.') === version && existsSync(join(prefix, 'include', 'node', 'common.gypi'));
    } catch {
      return false;
    }
  };
  const prefixes = [process.config.variables.node_prefix, join(dirname(process.execPath), '..')].filter(Boolean);
  if (process.env.SPPO_GYP_NODEDIR !== 'node-api-headers') {
    const local = prefixes.find(hasHeaders);
    if (local) return [`--nodedir=${local}`];
    const cache = process.env.XDG_CACHE_HOME ? join(process.env.XDG_CACHE_HOME, 'node-gyp') : join(homedir(), '.cache', 'node-gyp');
    if (existsSync(join(cache, version, 'include', 'node', 'common.gypi'))) return [];
  }
  let api;
  try {
    api = dirname(require.resolve('node-api-headers/package.json'));
  } catch {
    try {
      // A dependency of cmake-js, which may not be hoisted.
      api = dirname(createRequire(require.resolve('cmake-js/package.json')).resolve('node-api-headers/package.json'));
    } catch {
      console.log('sppo-native: no local Node headers and no node-api-headers package; node-gyp will try to download headers');
      return [];
    }
  }
  // Outside build/: `node-gyp rebuild` cleans build/ before it configures.
  const dir = join(tmpdir(), `sppo-native-nodedir-${version}`);
  const inc = join(dir, 'include', 'node');
  mkdirSync(inc, { recursive: true });
  for (const f of readdirSync(join(api, 'include'))) copyFileSync(join(api, 'include', f), join(inc, f));
  writeFileSync(join(inc, 'config.gypi'), "{ 'variables': {} }\n");
  writeFileSync(
    join(inc, 'common.gypi'),
    "{ 'target_defaults': { 'default_configuration': 'Release', 'configurations': { 'Release': {}, 'Debug': {} } } }\n",
  );
  console.log(`sppo-native: no local Node headers for ${version}; using node-api-headers (${dir})`);
  return [`--nodedir=${dir}`];
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
  run(process.execPath, [candidates[0], 'rebuild', `--jobs=${jobs}`, ...nodedirArgs()]);
  markSystem('node-gyp');
}
