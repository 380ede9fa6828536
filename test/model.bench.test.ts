// `sppo-native bench model` runs end to end on the tiny size and writes its JSON report. No
// timing is asserted (performance is measured in benchmarks, not tests).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runModelBench } from '../src/bench/model.js';
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
    expect(lines.join('\n')).toMatch(/train step .* tokens\/s/);
  });

  it('refuses options it cannot honour', async () => {
    await expect(runModelBench({ device: 'cuda', log: () => {} })).rejects.toThrow(/CPU backend/);
    await expect(runModelBench({ size: 'huge' as never, log: () => {} })).rejects.toThrow(/--size must be/);
    await expect(runModelBench({ size: 'tiny', steps: 0, log: () => {} })).rejects.toThrow(/steps must be a positive integer/);
  });
});
