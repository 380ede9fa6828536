// Training-length truncation: `reference` against a transcription of the reference trainer's loop
// (uclaml/SPPO sppo/trainer.py tokenize_row, truncation_mode keep_end), and `fit` (each response
// cut to the room its prompt leaves), on random lengths around the limits.
import { describe, expect, it } from 'vitest';
import { referenceTruncation, truncatePair } from '../src/stages/sequences.js';
import { seededRandom } from './sppo.seed.js';

const { rand } = seededRandom('sppo.truncation');

/** The reference's steps, written in its own shape: per answer dict, prompt check then response check. */
function referenceLoop(prompt: number[], chosen: number[], rejected: number[], maxLength: number, maxPrompt: number): { c: number[]; r: number[] } {
  const ans = [
    { prompt: [...prompt], input: [...chosen] },
    { prompt: [...prompt], input: [...rejected] },
  ];
  const longer = Math.max(chosen.length, rejected.length);
  for (const a of ans) if (a.prompt.length + longer > maxLength) a.prompt = a.prompt.slice(-maxPrompt);
  for (const a of ans) if (a.prompt.length + longer > maxLength) a.input = a.input.slice(0, maxLength - maxPrompt);
  return { c: [...ans[0]!.prompt, ...ans[0]!.input], r: [...ans[1]!.prompt, ...ans[1]!.input] };
}

const seq = (n: number, base: number): number[] => Array.from({ length: n }, (_, i) => base + i);

describe('lengths.truncation', () => {
  it('reference: the prompt is cut only when prompt + the longer response exceeds max-length, then both responses', () => {
    // The numbers: prompt 600, responses 700 and 100, limits 1024 / 512.
    const p = seq(600, 0);
    const out = referenceTruncation(p, seq(700, 10_000), seq(100, 20_000), 1024, 512);
    expect(out.chosen.promptLength).toBe(512);
    expect(out.chosen.tokens.slice(0, 512)).toEqual(p.slice(88)); // the last 512 prompt tokens
    expect(out.chosen.tokens.length).toBe(1024); // 512 + 512
    expect(out.rejected.tokens.length).toBe(612); // the short response is under 512: kept whole
    // Short enough together: nothing is cut, even a prompt above 512.
    const fits = referenceTruncation(seq(600, 0), seq(400, 1), seq(424, 2), 1024, 512);
    expect(fits.chosen.promptLength).toBe(600);
    expect(fits.rejected.tokens.length).toBe(1024);
    // A short prompt with a long response: the prompt stays, the response is cut to 512, not to
    // the 924 tokens of room that `fit` would keep.
    const ref = referenceTruncation(seq(100, 0), seq(1000, 1), seq(50, 2), 1024, 512);
    expect([ref.chosen.tokens.length, ref.rejected.tokens.length]).toEqual([612, 150]);
    const fit = truncatePair(seq(100, 0), seq(1000, 1), seq(50, 2), { maxLength: 1024, maxPromptTokens: 512, truncation: 'fit' });
    expect([fit.chosen.tokens.length, fit.rejected.tokens.length]).toEqual([1024, 150]);
  });

  it('reference agrees with the transcribed loop on random lengths; fit never exceeds max-length', () => {
    for (let trial = 0; trial < 500; trial++) {
      const maxLength = 8 + Math.floor(rand() * 60);
      const maxPrompt = 1 + Math.floor(rand() * (maxLength - 1));
      const p = seq(1 + Math.floor(rand() * 1.5 * maxLength), 0);
      const c = seq(Math.floor(rand() * 1.5 * maxLength), 1000);
      const r = seq(Math.floor(rand() * 1.5 * maxLength), 2000);
      const got = truncatePair(p, c, r, { maxLength, maxPromptTokens: maxPrompt, truncation: 'reference' });
      const want = referenceLoop(p, c, r, maxLength, maxPrompt);
      const what = `trial ${trial}: L ${maxLength}, M ${maxPrompt}, |p| ${p.length}, |c| ${c.length}, |r| ${r.length}`;
      expect(got.chosen.tokens, what).toEqual(want.c);
      expect(got.rejected.tokens, what).toEqual(want.r);
      expect(got.chosen.promptLength, what).toBe(got.rejected.promptLength);
      const f = truncatePair(p, c, r, { maxLength, maxPromptTokens: maxPrompt, truncation: 'fit' });
      expect(f.chosen.promptLength).toBe(p.length);
      expect(f.chosen.tokens.length).toBe(Math.max(p.length, Math.min(maxLength, p.length + c.length)));
      expect(f.rejected.tokens.length).toBe(Math.max(p.length, Math.min(maxLength, p.length + r.length)));
    }
  });
});

describe('runs recorded before lengths.truncation existed', () => {
  it('resume under the rule they used (fit), and the default is refused with the setting named', async () => {
    const { mkdtempSync, readFileSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { checkRecipeChange, writeRecipeRecord } = await import('../src/run/recipeRecord.js');
    const { defaultRecipe } = await import('../src/recipe/fields.js');
    const out = mkdtempSync(join(tmpdir(), 'sppo-trunc-'));
    const r = defaultRecipe();
    r.model = '/m';
    r.judge = 'builtin:demo';
    r.prompts = ['/p.jsonl'];
    writeRecipeRecord(out, r, () => {});
    const file = join(out, 'recipe.resolved.yaml');
    // An older record: no truncation key, no rollout engine keys.
    writeFileSync(file, readFileSync(file, 'utf8').replace(/\n  truncation: reference/, '').replace(/\n  engine: native/, '').replace(/\n  serverCommand: null/, '').replace(/\n  serverStartupSeconds: 900/, ''));
    expect(readFileSync(file, 'utf8')).not.toMatch(/truncation|engine/);
    expect(() => checkRecipeChange(out, r)).toThrow(/lengths.truncation \(was "fit", now "reference"\)/);
    r.lengths.truncation = 'fit';
    expect(checkRecipeChange(out, r)).toEqual([]);
  });
});
