// Recipes: reference defaults, YAML files, flag overrides, and errors that name the key.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { defaultRecipe } from '../src/recipe/fields.js';
import { applyOverrides, loadRecipeFile, recipeToYaml, validateRecipe } from '../src/recipe/load.js';
import { resolveRecipe } from '../src/recipe/resolve.js';

const dir = mkdtempSync(join(tmpdir(), 'sppo-recipe-'));
const yamlFile = (name: string, text: string): string => {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
};

describe('recipe defaults are the reference recipe', () => {
  it('matches DESIGN.md', () => {
    const r = defaultRecipe();
    expect(r.rollout).toMatchObject({ k: 5, temperature: 0.7, topP: 0.9, maxNewTokens: 2048 });
    expect(r.sppo).toEqual({ eta: 1000, loss: 'sppo', pairing: 'best-worst' });
    expect(r.train).toMatchObject({
      lr: 5e-7, optimizer: 'rmsprop', schedule: 'linear', warmupRatio: 0.1, globalBatch: 64, maxGradNorm: 1.0, selectedEpoch: 1,
    });
    expect(r.iterations).toBe(3);
    expect(r.lengths).toEqual({ maxPromptTokens: 512, maxLength: 1024, truncation: 'reference' });
    expect(r.promptColumn).toBe('prompt');
  });
});

describe('recipe files and overrides', () => {
  it('loads nested YAML, resolves paths against the file, and flags override it', () => {
    const f = yamlFile('a.yaml', 'model: ./m\nprompts: p.jsonl\njudge: builtin:demo\nrollout:\n  k: 3\ntrain:\n  lr: 1.0e-3\n  globalBatch: 8\n  microBatch: 2\n');
    const r = loadRecipeFile(f);
    expect(r.model).toBe(join(dir, 'm'));
    expect(r.prompts).toEqual([join(dir, 'p.jsonl')]);
    expect(r.rollout.k).toBe(3);
    expect(r.rollout.temperature).toBe(0.7); // untouched default
    applyOverrides(r, { 'rollout.k': '7', 'train.lr': 2e-6, prompts: ['x.jsonl', 'y.jsonl', 'z.jsonl'] });
    expect(r.rollout.k).toBe(7);
    expect(r.train.lr).toBe(2e-6);
    expect(r.prompts).toEqual([join(process.cwd(), 'x.jsonl'), join(process.cwd(), 'y.jsonl'), join(process.cwd(), 'z.jsonl')]);
    expect(validateRecipe(r)).toBe(r);
  });

  it('resolves reward-model: and precomputed: judge targets like other paths', () => {
    const sub = mkdtempSync(join(dir, 'judges-'));
    const cases: [string, string][] = [
      ['reward-model:./rm?tau=2', `reward-model:${join(sub, 'rm')}?tau=2`],
      ['precomputed:scores.jsonl', `precomputed:${join(sub, 'scores.jsonl')}`],
      ['precomputed:/abs/s.parquet?tau=0.5', 'precomputed:/abs/s.parquet?tau=0.5'],
      ['command:python judge.py --x ./y', 'command:python judge.py --x ./y'], // runs in the working folder
      ['builtin:length?unit=chars', 'builtin:length?unit=chars'],
    ];
    cases.forEach(([spec, want], i) => {
      const f = join(sub, `judge-${i}.yaml`);
      writeFileSync(f, `judge: "${spec}"\n`);
      expect(loadRecipeFile(f).judge, spec).toBe(want);
    });
    // Flags resolve against the working folder.
    expect(applyOverrides(defaultRecipe(), { judge: 'precomputed:s.jsonl' }).judge).toBe(`precomputed:${join(process.cwd(), 's.jsonl')}`);
  });

  it('round-trips through recipe.resolved.yaml', () => {
    const r = defaultRecipe();
    r.model = '/m';
    r.prompts = ['/p.jsonl'];
    r.judge = 'builtin:length';
    r.rollout.k = 2 + Math.floor(Math.random() * 10);
    const back = parse(recipeToYaml(r)) as unknown;
    expect(back).toEqual(r);
  });

  it('names unknown keys, wrong types and out-of-range values', () => {
    expect(() => loadRecipeFile(yamlFile('u.yaml', 'rollout:\n  kk: 3\n'))).toThrow(/unknown key 'rollout.kk'/);
    expect(() => loadRecipeFile(yamlFile('u2.yaml', 'lerning_rate: 3\n'))).toThrow(/unknown key 'lerning_rate'/);
    expect(() => loadRecipeFile(yamlFile('t.yaml', 'rollout:\n  k: three\n'))).toThrow(/rollout.k must be an integer/);
    expect(() => loadRecipeFile(yamlFile('r.yaml', 'rollout:\n  topP: 1.5\n'))).toThrow(/rollout.topP must be at most 1/);
    expect(() => loadRecipeFile(yamlFile('e.yaml', 'sppo:\n  loss: hinge\n'))).toThrow(/sppo.loss must be one of sppo, sppo_single/);
    expect(() => loadRecipeFile(yamlFile('s.yaml', 'train: 3\n'))).toThrow(/train must be a mapping/);
    expect(() => loadRecipeFile(yamlFile('bad.yaml', 'a: [1,\n'))).toThrow(/not valid YAML/);
    expect(() => loadRecipeFile(join(dir, 'missing.yaml'))).toThrow(/missing.yaml does not exist/);
    expect(() => applyOverrides(defaultRecipe(), { 'train.lr': 'fast' })).toThrow(/--lr: train.lr must be a finite number \(got 'fast'\)/);
    expect(() => applyOverrides(defaultRecipe(), { 'train.lr': NaN })).toThrow(/--lr: train.lr must be a finite number \(got NaN\)/);
    expect(() => loadRecipeFile(yamlFile('inf.yaml', 'train:\n  lr: .inf\n'))).toThrow(/train.lr must be a finite number \(got Infinity\)/);
  });

  it('checks fields against each other', () => {
    const base = (): ReturnType<typeof defaultRecipe> => Object.assign(defaultRecipe(), { model: '/m', prompts: ['/p'], judge: 'builtin:demo' });
    expect(() => validateRecipe(defaultRecipe())).toThrow(/model is required/);
    const a = base();
    a.train.microBatch = 5;
    expect(() => validateRecipe(a)).toThrow(/globalBatch \(64\) must be a multiple of train.microBatch \(5\)/);
    const b = base();
    b.train.selectedEpoch = 2;
    expect(() => validateRecipe(b)).toThrow(/selectedEpoch \(2\) must not exceed train.epochs \(1\)/);
    const d = base();
    d.sppo.pairing = 'all';
    d.sppo.loss = 'dpo';
    expect(() => validateRecipe(d)).toThrow(/pairing 'all' needs sppo.loss 'sppo'/);
    const c = base();
    c.prompts = ['/a', '/b'];
    expect(() => validateRecipe(c)).toThrow(/2 files but iterations is 3/);
  });

  it('uses the demo recipe when neither a recipe file nor a model is given', () => {
    const demo = yamlFile('demo.yaml', 'model: demo\nprompts: p.jsonl\njudge: builtin:demo\noutput: runs/x\n');
    const a = resolveRecipe({ demoRecipeFile: demo, overrides: { iterations: 1 } });
    expect(a.demo).toBe(true);
    expect(a.recipe.model).toBe('demo');
    expect(a.recipe.iterations).toBe(1);
    expect(() => resolveRecipe({ demoRecipeFile: demo, overrides: { model: '/m' } })).toThrow(/prompts is required/);
  });
});

describe('train.gradientDtype (bf16 gradient buffers)', () => {
  it('needs precision bf16, and a run folder keeps it (a record without it means fp32)', async () => {
    const { readFileSync } = await import('node:fs');
    const { checkRecipeChange, writeRecipeRecord } = await import('../src/run/recipeRecord.js');
    const r = defaultRecipe();
    r.model = '/m';
    r.judge = 'builtin:demo';
    r.prompts = ['/p.jsonl'];
    r.train.gradientDtype = 'bf16';
    expect(() => validateRecipe(r)).toThrow("train.gradientDtype 'bf16' needs precision 'bf16' (got precision 'fp32')");
    r.precision = 'bf16';
    expect(validateRecipe(r).train.gradientDtype).toBe('bf16');
    expect(applyOverrides(defaultRecipe(), { 'train.gradientDtype': 'bf16' }).train.gradientDtype).toBe('bf16');
    const out = mkdtempSync(join(tmpdir(), 'sppo-graddtype-'));
    writeRecipeRecord(out, r, () => {});
    expect(readFileSync(join(out, 'recipe.resolved.yaml'), 'utf8')).toMatch(/gradientDtype: bf16/);
    const back = { ...r, train: { ...r.train, gradientDtype: 'fp32' as const } };
    expect(() => checkRecipeChange(out, back)).toThrow(/train.gradientDtype \(was "bf16", now "fp32"\)/);
    expect(checkRecipeChange(out, r)).toEqual([]);
  });
});
