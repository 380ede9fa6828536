// yargs options for every recipe field (one table: src/recipe/fields.ts). No yargs defaults, so
// that only flags actually given override the recipe file; the default is shown in the help.
// Commands other than train (generate, eval) use a few fields in their own sense and pass their
// own help text for them (FlagText).
import type { Argv } from 'yargs';
import { recipeFields } from './fields.js';

export interface FlagText {
  describe: string;
  /** The default shown; null: none (a flag the command requires). Default: the field's default. */
  default?: string | null;
}

function shownDefault(v: unknown): string {
  return v === null ? 'none' : Array.isArray(v) ? (v.length ? v.join(' ') : 'none') : v === '' ? 'none' : String(v);
}

export function withRecipeFlags<T>(y: Argv<T>, only?: readonly string[], texts: Readonly<Record<string, FlagText>> = {}): Argv<T> {
  let out = y;
  for (const f of recipeFields) {
    if (only && !only.includes(f.path)) continue;
    const text = texts[f.path];
    const def = text?.default === undefined ? shownDefault(f.default) : text.default;
    const numeric = f.type.kind === 'int' || f.type.kind === 'number';
    const group = f.path.includes('.') ? `${f.path.split('.')[0]} options:` : 'Run options:';
    out = out.option(f.flag, {
      // No default shown for a flag the command requires (yargs marks it [required]).
      describe: `${text?.describe ?? f.describe}${def === null ? '' : ` [${only ? '' : `recipe: ${f.path}; `}default: ${def}]`}`,
      // Numbers are not typed for yargs: it would turn `--lr fast` into NaN, and the recipe's own
      // check (src/recipe/load.ts) reports the value as typed.
      type: numeric ? undefined : 'string',
      requiresArg: numeric ? true : undefined,
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
