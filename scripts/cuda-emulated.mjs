#!/usr/bin/env node
// Runs the CUDA suites on the CUDA emulator (native/emu/, docs/cuda-emulator.md): builds the CUDA
// backend with the host compiler into build-emu/ (SPPO_CUDA=emulate: no nvcc, no GPU, no
// cuBLASLt needed), runs every test_*_cuda suite and the emulator's own suite under ctest, then
// the TypeScript CUDA suites (tsSuites) on the emulated addon.
// On a machine with a GPU the same suites run for real from the normal build (scripts/ctest.mjs);
// this is how they run everywhere else, so CUDA code is executed, not only compiled, in CI.
// Environment: SPPO_BUILD_JOBS (default: number of cores), SPPO_EMU_SKIP=1 to skip,
// SPPO_EMU_SEED (the emulator's block and thread order), SPPO_TEST_SEED (the suites' inputs).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { arch, cpus, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

// The TypeScript suites that exercise --device cuda end to end.
const tsSuites = ['test/kernels.cuda.test.ts', 'test/pipeline.cuda.test.ts'];

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// --asan: the same suites under AddressSanitizer (build-emu-asan/), the emulator's stand-in for
// compute-sanitizer's memcheck: a kernel's access outside its allocation is reported where it
// happens, and so is a misaligned typed access (UBSan's alignment check: a float4 or uint4 load
// from an address that is not 16-byte aligned, a fault on the GPU, is silent on x86 otherwise).
// Native suites only (the TypeScript ones would need libasan preloaded into node).
// --racecheck: the same suites under ThreadSanitizer (build-emu-tsan/), the emulator's stand-in for
// compute-sanitizer's racecheck: each CUDA thread is a TSan fiber, ordered only by the barriers,
// warp synchronisation and launches the scheduler declares (native/emu/race_annotations.h), so two
// threads of a block touching the same shared or global bytes, one writing, with no barrier
// between them, are reported with both stacks. Native suites only, like --asan.
const asan = process.argv.includes('--asan');
const racecheck = process.argv.includes('--racecheck');
if (asan && racecheck) {
  console.error('sppo-native: --asan and --racecheck are separate builds: pass one');
  process.exit(2);
}
const sanitizer = asan ? 'address,alignment' : racecheck ? 'thread' : null;
const build = join(root, asan ? 'build-emu-asan' : racecheck ? 'build-emu-tsan' : 'build-emu');

function skip(why) {
  console.log(`sppo-native: CUDA suites on the emulator skipped: ${why}`);
  process.exit(0);
}
if (process.env.SPPO_EMU_SKIP === '1') skip('SPPO_EMU_SKIP=1');
if (platform() !== 'linux' || arch() !== 'x64') skip(`the emulator's fibers are written for x86-64 Linux (this is ${platform()} ${arch()})`);
if (spawnSync('cmake', ['--version'], { stdio: 'ignore' }).status !== 0) skip('no cmake on PATH');

const jobs = Number(process.env.SPPO_BUILD_JOBS ?? cpus().length) || 1;
function run(cmd, args) {
  console.log(`sppo-native: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) throw r.error;
  if (r.status !== 0) process.exit(r.status ?? 1);
}

// The addon too, for the TypeScript CUDA suites: Node-API headers from node-api-headers, as
// build-native.mjs's cmake-js build takes them (Linux addons link no Node library).
const require = createRequire(import.meta.url);
let nodeApi = null;
try {
  nodeApi = join(dirname(require.resolve('node-api-headers/package.json')), 'include');
} catch {
  try {
    nodeApi = join(dirname(createRequire(require.resolve('cmake-js/package.json')).resolve('node-api-headers/package.json')), 'include');
  } catch {
    console.log('sppo-native: no node-api-headers package: the emulated addon (TypeScript CUDA suites) is not built');
  }
}
// Configured at every run, not only the first: a build directory made by an older version of this
// script then takes the current flags (e.g. --asan's alignment check) instead of keeping its own.
run('cmake', ['-S', '.', '-B', build, '-DSPPO_CUDA=emulate',
    ...(sanitizer
      ? ['-DCMAKE_BUILD_TYPE=RelWithDebInfo',
          `-DCMAKE_CXX_FLAGS=-fsanitize=${sanitizer} -fno-sanitize-recover=all -fno-omit-frame-pointer`,
          `-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${sanitizer}`, `-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=${sanitizer}`,
          ...(racecheck ? ['-DSPPO_EMU_RACECHECK=ON'] : [])]
      : ['-DCMAKE_BUILD_TYPE=Release', ...(nodeApi ? [`-DCMAKE_JS_INC=${nodeApi}`] : [])])]);
run('cmake', ['--build', build, '--parallel', String(jobs)]);
// Each suite has 10 minutes (25 under ASan, 60 under TSan): the emulator runs every thread of every
// block on one core. Leaks are not reported: the fibers' stacks and a graph's allocations live for
// the process. Under TSan the CPU twins run on one OpenMP thread: libgomp is not instrumented, so
// its threads' hand-offs would be reported as races, and they are not what is being checked.
const withEnv = (name, value) => { process.env[name] = `${value}${process.env[name] ? `:${process.env[name]}` : ''}`; };
if (asan) {
  withEnv('ASAN_OPTIONS', 'detect_leaks=0');
  withEnv('UBSAN_OPTIONS', 'print_stacktrace=1');
}
if (racecheck) {
  withEnv('TSAN_OPTIONS', 'halt_on_error=0:die_after_fork=0');
  process.env.OMP_NUM_THREADS = '1';
}
run('ctest', ['--test-dir', build, '--output-on-failure', '-j', String(Math.min(jobs, 2)), '--timeout',
  asan ? '1500' : racecheck ? '3600' : '600']);
if (sanitizer) process.exit(0);

// The TypeScript suites that need a GPU, on the emulated addon: in the main vitest run they skip
// (its addon has no device); here SPPO_ADDON_PATH gives them this build's.
const addon = join(build, 'Release', 'sppo_native.node');
if (!existsSync(addon)) {
  console.log('sppo-native: the TypeScript CUDA suites on the emulator skipped: the emulated addon was not built (no node-api-headers package)');
  process.exit(0);
}
const vitest = join(dirname(require.resolve('vitest/package.json')), 'vitest.mjs');
console.log(`sppo-native: ${tsSuites.join(' ')} on the emulated addon`);
const r = spawnSync(process.execPath, [vitest, 'run', ...tsSuites], {
  cwd: root, stdio: 'inherit',
  env: { ...process.env, SPPO_ADDON_PATH: addon, SPPO_CUBLASLT_LIBRARY: join(build, 'emu-lib', 'libcublasLt.so.13') },
});
process.exit(r.status ?? 1);
