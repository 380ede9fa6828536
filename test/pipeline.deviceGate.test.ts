// `device: 'cuda'` for models: open where the build has CUDA, a GPU is visible and cuBLASLt loads
// (then test/pipeline.cuda.test.ts runs the pipeline there); everywhere else every entry point
// (the Llama engine, its trainer and generation, reward-model and PairRM judges, the CLI) refuses
// with the one reason: no CUDA backend in this build, no GPU visible, or no cuBLASLt. The CLI's
// refusal is one line. `train --help` and `judge --help` say what --device does.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native } from '../src/native/addon.js';
import { createRandomModel, loadModel } from '../src/model/engine.js';
import { loadPairRm } from '../src/pairrm/model.js';
import { createJudge } from '../src/judge/factory.js';
import { engineJudgeContext } from '../src/pipeline/judgeContext.js';
import { nativeEngine } from '../src/pipeline/modelProvider.js';
import { tinyConfig, writeTinyCheckpoint } from './helpers/tinyModels.js';
import { writeTinyPairRm } from './helpers/pairrmFolder.js';
import { testSeed } from './helpers/modelFixtures.js';

const repo = join(import.meta.dirname, '..');
const bin = join(repo, 'bin', 'sppo-native.js');
const haveDist = existsSync(join(repo, 'dist', 'cli', 'main.js'));
const root = mkdtempSync(join(tmpdir(), 'sppo-gate-'));
const seed = testSeed('pipeline.deviceGate');

const build = native().buildInfo();
const devices = build.cuda ? native().cudaDevices() : { devices: [], reason: '' };
const cudaUsable = build.cuda && devices.devices.length > 0 && build.cublasLt;
// The reason this machine gives, in the order the checks are made.
const reason = !build.cuda
  ? /device 'cuda' is not available: this build of sppo-native has no CUDA backend/
  : devices.devices.length === 0
    ? /device 'cuda' is not available: \S/
    : /device 'cuda' cannot run models: \S/;

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, SPPO_NO_PROGRESS: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(cudaUsable)('device cuda is refused with its reason where CUDA cannot run (skipped: this machine runs CUDA models; test/pipeline.cuda.test.ts covers it)', () => {
  const llama = writeTinyCheckpoint(join(root, 'llama3'), 'llama3', seed);
  const reward = writeTinyCheckpoint(join(root, 'reward'), 'reward', seed + 1);
  const pairrm = writeTinyPairRm(join(root, 'pairrm'), { seed: seed + 2 });

  it('by the Llama engine: loading, random models (hence training, reference log-probs and rollout)', async () => {
    await expect(loadModel(llama.folder, { device: 'cuda' })).rejects.toThrow(reason);
    await expect(createRandomModel(tinyConfig('llama2'), 3, { device: 'cuda' })).rejects.toThrow(reason);
    await expect(nativeEngine.load(llama.folder, 'cuda')).rejects.toThrow(reason);
  });

  it('by the judges: reward models and PairRM', async () => {
    await expect(createJudge(`reward-model:${reward.folder}`, engineJudgeContext(nativeEngine, 'cuda', 'fp32'))).rejects.toThrow(reason);
    await expect(loadPairRm(pairrm.folder, { device: 'cuda' })).rejects.toThrow(reason);
    await expect(createJudge(`pairrm:${pairrm.folder}?prompt=plain`, engineJudgeContext(nativeEngine, 'cuda', 'fp32'))).rejects.toThrow(reason);
  });

  it.skipIf(!haveDist)('by the CLI, in one line naming the reason (skipped without dist/, which `npm test` builds first)', () => {
    const prompts = join(root, 'prompts.jsonl');
    writeFileSync(prompts, '{"prompt": "hello"}\n');
    const runs: [string, string[]][] = [
      ['train (the demo)', ['train', '--device', 'cuda', '--output', join(root, 'run')]],
      ['generate', ['generate', '--model', llama.folder, '--prompts', prompts, '--output', join(root, 'gen'), '--device', 'cuda']],
    ];
    for (const [what, args] of runs) {
      const r = cli(args);
      expect(r.code, `${what}: ${r.stderr}`).toBe(1);
      // The error is the last line, alone (a log line about the run may come before it).
      const lines = r.stderr.trim().split('\n');
      const last = lines[lines.length - 1]!;
      expect(last, what).toMatch(/^sppo-native: --device cuda cannot be used: /);
      expect(last, what).toMatch(reason);
      expect(lines.filter((l) => /cuda/.test(l) && l !== last && !l.startsWith('sppo-native demo:')), `${what}: ${r.stderr}`).toEqual([]);
      expect(r.stderr, what).not.toMatch(/\n\s+at /); // no stack trace
    }
  });
});

describe.skipIf(!haveDist)('the CLI describes --device (skipped without dist/, which `npm test` builds first)', () => {
  it('train --help: cpu, or cuda with what it needs; the precision, fp32 or bf16, and what bf16 keeps in fp32', () => {
    const r = cli(['train', '--help']);
    expect(r.code).toBe(0);
    const text = r.stdout.replace(/\s+/g, ' ');
    expect(text).toMatch(/--device Compute device for rollout, reference log-probs, training and model judges \(PairRM, reward models\): cpu, or cuda \(one GPU per rank; needs a CUDA build, a visible GPU and cuBLASLt, else refused with the reason\)/);
    expect(text).toMatch(/\[choices: "cpu", "cuda"\]|"cpu", "cuda"/);
    expect(text).toMatch(/--precision Numeric mode of the engine for every stage: fp32, or bf16 \(bf16 weights and activations; fp32 gradients, statistics, master weights and optimizer state;/);
    expect(text).toMatch(/on cpu it is emulated/);
    expect(text).toMatch(/\[choices: "fp32", "bf16"\]/);
  });

  it('judge --help: where model judges run, and in which precision', () => {
    const r = cli(['judge', '--help']);
    expect(r.code).toBe(0);
    const text = r.stdout.replace(/\s+/g, ' ');
    expect(text).toMatch(/--device Where model judges \(pairrm:, reward-model:\) run: cpu, or cuda/);
    expect(text).toMatch(/--precision Numeric mode of model judges: fp32, or bf16/);
  });
});
