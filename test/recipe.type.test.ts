// The Recipe type follows from the field table (src/recipe/fields.ts). These checks run in the
// type checker (`tsc -p tsconfig.test.json`, part of `npm test`) and at run time.
import { describe, expect, expectTypeOf, it } from 'vitest';
import { defaultRecipe, recipeFields, getPath } from '../src/recipe/fields.js';
import type { Recipe } from '../src/recipe/types.js';
import { LOSS_TYPES, OPTIMIZER_KINDS } from '../src/native/kinds.js';

describe('the Recipe type', () => {
  it('has every field of the table with its value type', () => {
    expectTypeOf<Recipe['rollout']['k']>().toEqualTypeOf<number>();
    expectTypeOf<Recipe['chatTemplate']>().toEqualTypeOf<string | null>();
    expectTypeOf<Recipe['prompts']>().toEqualTypeOf<string[]>();
    expectTypeOf<Recipe['sppo']['loss']>().toEqualTypeOf<(typeof LOSS_TYPES)[number]>();
    expectTypeOf<Recipe['train']['optimizer']>().toEqualTypeOf<(typeof OPTIMIZER_KINDS)[number]>();
    expectTypeOf<Recipe['device']>().toEqualTypeOf<'cpu' | 'cuda'>();
    expectTypeOf<Recipe>().not.toHaveProperty('nope');
    expectTypeOf<Recipe['rollout']>().not.toHaveProperty('nope');
  });

  it('and the default recipe has exactly the table, every value of its declared kind', () => {
    const r = defaultRecipe();
    const leaves = (o: object, prefix = ''): string[] =>
      Object.entries(o).flatMap(([k, v]) => (v !== null && typeof v === 'object' && !Array.isArray(v) ? leaves(v as object, `${prefix}${k}.`) : [`${prefix}${k}`]));
    expect(leaves(r).sort()).toEqual(recipeFields.map((f) => f.path).sort());
    for (const f of recipeFields) {
      const v = getPath(r, f.path);
      const t = f.type.kind;
      if (t === 'int' || t === 'number') expect(typeof v, f.path).toBe('number');
      else if (t === 'strings') expect(Array.isArray(v), f.path).toBe(true);
      else if (t === 'enum') expect(f.type.values, f.path).toContain(v);
      else expect(v === null || typeof v === 'string', f.path).toBe(true);
    }
  });
});
