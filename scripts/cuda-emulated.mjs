#!/usr/bin/env node
// Runs the CUDA suites on the CUDA emulator (native/emu/, docs/cuda-emulator.md): builds the CUDA
// backend with the host compiler into build-emu/ (SPPO_CUDA=emulate: no nvcc, no GPU, no
// cuBLASLt needed) and runs every test_*_cuda suite and the emulator's own suite under ctest.
// On a machine with a GPU the same suites run for real from the normal build (scripts/ctest.mjs);
// this is how they run everywhere else, so CUDA code is executed, not only compiled, in CI.
// Environment: SPPO_BUILD_JOBS (default: number of cores), SPPO_EMU_SKIP=1 to skip,
// SPPO_EMU_SEED (the emulator's block and thread order), SPPO_TEST_SEED (the suites' inputs).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { arch, cpus, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const build = join(root, 'build-emu');

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

if (!existsSync(join(build, 'CMakeCache.txt')))
  run('cmake', ['-S', '.', '-B', build, '-DSPPO_CUDA=emulate', '-DCMAKE_BUILD_TYPE=Release']);
run('cmake', ['--build', build, '--parallel', String(jobs)]);
// Each suite has 10 minutes: the emulator runs every thread of every block on one core.
run('ctest', ['--test-dir', build, '--output-on-failure', '-j', String(Math.min(jobs, 2)), '--timeout', '600']);
