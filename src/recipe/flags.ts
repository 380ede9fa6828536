// yargs options for every recipe field (one table: src/recipe/fields.ts). No yargs defaults, so
// that only flags actually given override the recipe file; the default is shown in the help.
import type { Argv } from 'yargs';
import { recipeFields } from './fields.js';

export function withRecipeFlags<T>(y: Argv<T>, only?: readonly string[]): Argv<T> {
  let out = y;
  for (const f of recipeFields) {
    if (only && !only.includes(f.path)) continue;
    const def = f.default === null ? 'none' : Array.isArray(f.default) ? (f.default.length ? f.default.join(' ') : 'none') : f.default === '' ? 'none' : String(f.default);
    const group = f.path.includes('.') ? `${f.path.split('.')[0]} options:` : 'Run options:';
    out = out.option(f.flag, {
      describe: `${f.describe} [recipe: ${f.path}; default: ${def}]`,
      type: f.type.kind === 'int' || f.type.kind === 'number' ? 'number' : 'string',
      array: f.type.kind === 'strings' ? true : undefined,
      choices: f.type.kind === 'enum' ? [...f.type.values] : undefined,
      group,
    }) as Argv<T>;
  }
  return out;
}

/** Recipe path -> raw value for the flags present in `args`. */
export function recipeOverrides(args: Record<string, unknown>, only?: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of recipeFields) {
    if (only && !only.includes(f.path)) continue;
    if (args[f.flag] !== undefined) out[f.path] = args[f.flag];
  }
  return out;
}
