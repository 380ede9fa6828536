// Recipes from YAML files and CLI flags, validated with messages that name the key.
// Paths inside a recipe file are relative to that file; paths given as flags to the working folder.
import { readFileSync, existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { Recipe } from './types.js';
import { parseJudgeSpec } from '../judge/spec.js';
import { defaultRecipe, fieldByPath, getPath, recipeFields, setPath, type Field } from './fields.js';

const pathFields = new Set(['model', 'prompts', 'chatTemplate']);
// Judge kinds whose target is a file or folder (a command: runs in the working folder as typed).
const judgePathKinds = ['pairrm:', 'reward-model:', 'precomputed:'];

export class RecipeError extends Error {}

function describeValue(v: unknown): string {
  // Numbers as typed: NaN and Infinity would print as `null` through JSON.stringify.
  return typeof v === 'string' ? `'${v}'` : typeof v === 'number' ? String(v) : JSON.stringify(v);
}

/** Converts and checks one value for `field`; `where` names its origin in errors. */
export function coerceField(field: Field, raw: unknown, where: string): unknown {
  const name = `${where}${field.path}`;
  const t = field.type;
  switch (t.kind) {
    case 'string':
      if (raw === null && t.nullable) return null;
      if (typeof raw !== 'string') throw new RecipeError(`${name} must be a string (got ${describeValue(raw)})`);
      return raw;
    case 'strings': {
      const list = Array.isArray(raw) ? raw : [raw];
      if (list.length === 0 || !list.every((s) => typeof s === 'string' && s.length > 0)) {
        throw new RecipeError(`${name} must be a file path or a list of file paths (got ${describeValue(raw)})`);
      }
      return list;
    }
    case 'int': {
      const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
      if (typeof n !== 'number' || !Number.isInteger(n)) throw new RecipeError(`${name} must be an integer (got ${describeValue(raw)})`);
      if (n < t.min || (t.max !== undefined && n > t.max)) {
        throw new RecipeError(`${name} must be ${t.max !== undefined ? `between ${t.min} and ${t.max}` : `at least ${t.min}`} (got ${n})`);
      }
      return n;
    }
    case 'number': {
      const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
      if (typeof n !== 'number' || !Number.isFinite(n)) throw new RecipeError(`${name} must be a finite number (got ${describeValue(raw)})`);
      if (t.min !== undefined && (t.exclusiveMin ? n <= t.min : n < t.min)) {
        throw new RecipeError(`${name} must be ${t.exclusiveMin ? 'greater than' : 'at least'} ${t.min} (got ${n})`);
      }
      if (t.max !== undefined && n > t.max) throw new RecipeError(`${name} must be at most ${t.max} (got ${n})`);
      return n;
    }
    case 'enum':
      if (typeof raw !== 'string' || !t.values.includes(raw)) {
        throw new RecipeError(`${name} must be one of ${t.values.join(', ')} (got ${describeValue(raw)})`);
      }
      return raw;
  }
}

/** `pairrm:<folder>[?opts]` / `reward-model:<folder>[?opts]` / `precomputed:<file>[?opts]` with the target resolved against `base`. */
function resolveJudgePath(spec: string, base: string): string {
  const kind = judgePathKinds.find((k) => spec.startsWith(k));
  if (!kind) return spec;
  const rest = spec.slice(kind.length);
  let target = rest;
  let options = '';
  try {
    const parsed = parseJudgeSpec(spec);
    target = parsed.target;
    options = rest.slice(target.length);
  } catch {
    return spec; // reported, with the syntax expected, when the judge is checked
  }
  if (target.trim() === '' || isAbsolute(target)) return spec;
  return `${kind}${resolve(base, target)}${options}`;
}

function resolvePathValue(path: string, value: unknown, base: string): unknown {
  if (path === 'judge' && typeof value === 'string') return resolveJudgePath(value, base);
  if (!pathFields.has(path) || value === null) return value;
  const fix = (p: string): string => (path === 'model' && p === 'demo') || isAbsolute(p) ? p : resolve(base, p);
  return Array.isArray(value) ? value.map((v) => fix(String(v))) : fix(String(value));
}

/** Walks a parsed YAML object, rejecting unknown keys by name, and applies it to `recipe`. */
export function applyRecipeObject(recipe: Recipe, obj: unknown, origin: string, baseDir: string): void {
  if (obj === null || obj === undefined) return;
  if (typeof obj !== 'object' || Array.isArray(obj)) throw new RecipeError(`${origin}: a recipe must be a mapping of keys to values`);
  const walk = (node: Record<string, unknown>, prefix: string): void => {
    for (const [key, value] of Object.entries(node)) {
      const path = prefix ? `${prefix}.${key}` : key;
      const field = fieldByPath.get(path);
      if (field) {
        const v = coerceField(field, value, `${origin}: `);
        setPath(recipe as unknown as Record<string, unknown>, path, resolvePathValue(path, v, baseDir));
        continue;
      }
      const isSection = recipeFields.some((f) => f.path.startsWith(`${path}.`));
      if (isSection && value !== null && typeof value === 'object' && !Array.isArray(value)) {
        walk(value as Record<string, unknown>, path);
        continue;
      }
      if (isSection) throw new RecipeError(`${origin}: ${path} must be a mapping (got ${describeValue(value)})`);
      const known = recipeFields.filter((f) => f.path.startsWith(prefix ? `${prefix}.` : '')).map((f) => f.path);
      throw new RecipeError(`${origin}: unknown key '${path}' (known keys: ${known.join(', ')})`);
    }
  };
  walk(obj as Record<string, unknown>, '');
}

export function loadRecipeFile(file: string, into: Recipe = defaultRecipe()): Recipe {
  if (!existsSync(file)) throw new RecipeError(`recipe file ${file} does not exist`);
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new RecipeError(`recipe file ${file} is not valid YAML: ${(err as Error).message}`);
  }
  applyRecipeObject(into, parsed, file, dirname(resolve(file)));
  return into;
}

/** CLI overrides: keys are recipe paths, values raw flag values; paths resolve against cwd. */
export function applyOverrides(recipe: Recipe, overrides: Record<string, unknown>): Recipe {
  for (const [path, raw] of Object.entries(overrides)) {
    if (raw === undefined) continue;
    const field = fieldByPath.get(path);
    if (!field) throw new RecipeError(`unknown recipe setting '${path}'`);
    const v = coerceField(field, raw, `--${field.flag}: `);
    setPath(recipe as unknown as Record<string, unknown>, path, resolvePathValue(path, v, process.cwd()));
  }
  return recipe;
}

/** Cross-field checks, run on the final recipe. */
export function validateRecipe(r: Recipe): Recipe {
  if (!r.model) throw new RecipeError('model is required (a model folder, or run `sppo-native train` with no arguments for the demo)');
  if (r.prompts.length === 0) throw new RecipeError('prompts is required (a prompt file, or one per iteration)');
  if (!r.judge) throw new RecipeError('judge is required (pairrm:<folder>, reward-model:<folder>, command:<cmd>, precomputed:<file>, builtin:<name> or llm:<base-url>?model=<name>)');
  if (r.prompts.length > 1 && r.prompts.length !== r.iterations) {
    throw new RecipeError(`prompts lists ${r.prompts.length} files but iterations is ${r.iterations}: give one file, or one per iteration`);
  }
  if (r.train.globalBatch % r.train.microBatch !== 0) {
    throw new RecipeError(`train.globalBatch (${r.train.globalBatch}) must be a multiple of train.microBatch (${r.train.microBatch})`);
  }
  if (r.train.gradientDtype === 'bf16' && r.precision !== 'bf16') {
    throw new RecipeError(`train.gradientDtype 'bf16' needs precision 'bf16' (got precision '${r.precision}'): bf16 gradient buffers belong to the bf16 mode, whose fp32 master weights they update`);
  }
  if (r.train.selectedEpoch > r.train.epochs) {
    throw new RecipeError(`train.selectedEpoch (${r.train.selectedEpoch}) must not exceed train.epochs (${r.train.epochs})`);
  }
  if (r.sppo.pairing === 'all' && r.sppo.loss !== 'sppo') {
    // Algorithm 1's all-responses form is a sum of per-response squares only for the sppo loss
    // (src/sppo/pairs.ts); the wrap-around pair would push dpo/ipo/sppo_single the wrong way.
    throw new RecipeError(`sppo.pairing 'all' needs sppo.loss 'sppo' (got '${r.sppo.loss}'); use pairing 'best-worst' with other losses`);
  }
  if (r.lengths.maxPromptTokens >= r.lengths.maxLength) {
    throw new RecipeError(`lengths.maxPromptTokens (${r.lengths.maxPromptTokens}) must be less than lengths.maxLength (${r.lengths.maxLength})`);
  }
  return r;
}

export function recipeToYaml(r: Recipe): string {
  return `# The resolved recipe of this run (defaults, recipe file and flags applied).\n${stringifyYaml(r)}`;
}

export { getPath };
