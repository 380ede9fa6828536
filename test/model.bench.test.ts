// `sppo-native bench model` runs end to end on the tiny size and writes its JSON report; the larger
// presets a user would try (100m, 1b) have the sizes they claim and are planned against the
// machine's memory (run here only as plans: they take seconds to minutes). No timing is asserted
// (performance is measured in benchmarks, not tests).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { benchMemoryBytes, runModelBench } from '../src/bench/model.js';
import { MODEL_PRESETS, parameterCount, presetConfig } from '../src/model/presets.js';
import { makeTempDir } from './helpers/modelFixtures.js';

const { dir, cleanup } = makeTempDir('sppo-bench-model-');
afterAll(cleanup);

describe('bench model', () => {
  it('runs the tiny suite and writes the report', async () => {
    const out = join(dir, 'model.json');
    const lines: string[] = [];
    const r = await runModelBench({ size: 'tiny', steps: 1, pairs: 2, seqLen: 16, newTokens: 4, prompts: 2, out, log: (l) => lines.push(l) });
    const report = JSON.parse(readFileSync(out, 'utf8'));
    expect(report.suite).toBe('model');
    expect(report.parameters).toBe(r.parameters);
    expect(r.parameters).toBeGreaterThan(100_000);
    expect(report.train).toMatchObject({ pairs: 2, seqLen: 16, steps: 1 });
    expect(report.train.tokensPerSecond).toBeGreaterThan(0);
    expect(report.generate.tokensPerSecond).toBeGreaterThan(0);
    expect(report.rollout).toMatchObject({ prompts: 2, promptTokens: 12, k: 5 });
    expect(report.rollout.sharedSeconds).toBeGreaterThan(0);
    expect(report.rollout.separateSeconds).toBeGreaterThan(0);
    expect(lines.join('\n')).toMatch(/train step .* tokens\/s/);
    expect(lines.join('\n')).toMatch(/rollout prefill .*K=5: one shared prefill .* s, 5 separate .* s/);
  });

  it('offers the sizes a user would try: about 100M and 1B parameters, Llama-shaped', () => {
    expect([...MODEL_PRESETS]).toEqual(['tiny', 'small', '100m', '1b']);
    const n = Object.fromEntries(MODEL_PRESETS.map((p) => [p, parameterCount(presetConfig(p))]));
    expect(n.tiny).toBe(156_480);
    expect(n['100m']! / 1e6).toBeCloseTo(100, -1);
    expect(n['1b']! / 1e9).toBeCloseTo(1.1, 1);
    for (const p of MODEL_PRESETS) expect(presetConfig(p)).toMatchObject({ architectures: ['LlamaForCausalLM'], model_type: 'llama' });
  });

  it('plans the memory of a size before allocating it, and refuses one the machine cannot hold', async () => {
    const c = presetConfig('1b');
    const planned = benchMemoryBytes(c, parameterCount(c), 1, 64);
    expect(planned).toBeGreaterThan(12 * 1.1e9);
    await expect(runModelBench({ size: '1b', memoryBytes: () => 8 * 2 ** 30, log: () => {} })).rejects.toThrow(
      /--size 1b needs about 1[23]\.\d GiB \(fp32 weights, gradients and optimizer state of 1.10B parameters, and activations\), but this machine has 8.0 GiB/,
    );
  });

  it('refuses options it cannot honour', async () => {
    await expect(runModelBench({ device: 'cuda', log: () => {} })).rejects.toThrow(/CPU backend/);
    await expect(runModelBench({ size: 'huge' as never, log: () => {} })).rejects.toThrow(/--size must be/);
    await expect(runModelBench({ size: 'tiny', steps: 0, log: () => {} })).rejects.toThrow(/steps must be a positive integer/);
  });
});
