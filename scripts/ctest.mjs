#!/usr/bin/env node
// Runs the native (no Node) test executables under ctest. They exist only in a CMake build.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const build = join(root, 'build');
if (!existsSync(join(build, 'CTestTestfile.cmake'))) {
  console.log('sppo-native: no CMake build tree (built with node-gyp?); native ctest suites skipped');
  process.exit(0);
}
const r = spawnSync('ctest', ['--test-dir', build, '--output-on-failure', '-j', '2'], { stdio: 'inherit' });
process.exit(r.status ?? 1);
