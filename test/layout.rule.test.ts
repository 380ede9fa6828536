// scripts/check-layout.mjs, the "one op, one contract" rule: it passes on this tree and fails,
// naming the missing path, on scratch copies of native/kernels, tests and bench with a file taken
// away or a stray one added.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const script = join(root, 'scripts', 'check-layout.mjs');

function check(dir?: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, dir === undefined ? [script] : [script, dir], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const scratches: string[] = [];
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sppo-layout-'));
  scratches.push(dir);
  for (const sub of ['kernels', 'tests', 'bench'])
    cpSync(join(root, 'native', sub), join(dir, 'native', sub), { recursive: true });
  return dir;
}
afterEach(() => {
  for (const d of scratches.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('the layout rule script', () => {
  it('passes on this tree', () => {
    const r = check();
    expect(r.out).toMatch(/check-layout: \d+ op contracts, each with its CPU implementation, test and benchmark/);
    expect(r.status).toBe(0);
  });

  it('passes on an unchanged copy', () => {
    expect(check(scratch()).status).toBe(0);
  });

  it('fails naming a missing benchmark, test or CPU file', () => {
    for (const path of ['native/bench/bench_rope.cpp', 'native/tests/test_sample.cpp', 'native/kernels/cpu/rows.cpp']) {
      const dir = scratch();
      unlinkSync(join(dir, path));
      const r = check(dir);
      expect(r.status).toBe(1);
      expect(r.out).toContain(`missing ${path}`);
    }
  });

  it('holds a new contract to all three files', () => {
    const dir = scratch();
    // An op name no tree will have: the contract alone, none of its three files.
    writeFileSync(join(dir, 'native/kernels/softcap_example.h'), '// Logit soft-capping (CONTRACT: cpu/softcap_example.cpp).\n');
    const r = check(dir);
    expect(r.status).toBe(1);
    const needed = ['native/kernels/cpu/softcap_example.cpp', 'native/tests/test_softcap_example.cpp', 'native/bench/bench_softcap_example.cpp'];
    for (const path of needed) expect(r.out).toContain(`missing ${path}`);
  });

  it('needs a GPU test for every CUDA kernel, and a contract for it', () => {
    const dir = scratch();
    // A complete CPU op (contract, CPU file, test, benchmark) that gains a CUDA kernel but no GPU test.
    writeFileSync(join(dir, 'native/kernels/softcap_example.h'), '// Logit soft-capping (CONTRACT: cpu/softcap_example.cpp).\n');
    writeFileSync(join(dir, 'native/kernels/cpu/softcap_example.cpp'), '// the CPU twin\n');
    writeFileSync(join(dir, 'native/tests/test_softcap_example.cpp'), '// its test\n');
    writeFileSync(join(dir, 'native/bench/bench_softcap_example.cpp'), '// its benchmark\n');
    writeFileSync(join(dir, 'native/kernels/cuda/softcap_example.cu'), '// softcap on the GPU\n');
    writeFileSync(join(dir, 'native/kernels/cuda/gelu.cu'), '// gelu on the GPU\n');
    const r = check(dir);
    expect(r.status).toBe(1);
    expect(r.out).toContain('missing native/tests/test_softcap_example_cuda.cpp');
    expect(r.out).toContain('native/kernels/cuda/gelu.cu has no op contract native/kernels/gelu.h');
  });

  it('refuses a kernels header that is neither a contract nor a math header, and a CPU file with no contract', () => {
    const dir = scratch();
    writeFileSync(join(dir, 'native/kernels/helpers.h'), '// helpers\n');
    writeFileSync(join(dir, 'native/kernels/softmax_math.h'), '// math shared by twins\n');
    writeFileSync(join(dir, 'native/kernels/cpu/orphan.cpp'), '// no contract\n');
    const r = check(dir);
    expect(r.status).toBe(1);
    expect(r.out).toContain('native/kernels/helpers.h is neither an op contract');
    expect(r.out).toContain('native/kernels/cpu/orphan.cpp has no op contract native/kernels/orphan.h');
    expect(r.out).not.toContain('softmax_math');
  });

  it('says so when the folder is not a checkout', () => {
    const empty = mkdtempSync(join(tmpdir(), 'sppo-layout-empty-'));
    scratches.push(empty);
    const r = check(empty);
    expect(r.status).toBe(2);
    expect(r.out).toContain('is not a folder');
  });
});
