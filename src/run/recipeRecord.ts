// recipe.resolved.yaml: the full recipe of a run, written when it starts. A rerun with a recipe
// that would change finished work (model, prompts, sampling, judge, loss, batch shape...) is
// refused with the differing keys named; settings that only steer what is still to come
// (iterations, lr, clipping, resume frequency, eval, device, output) may change, with a note.
// The caller may allow more (the judge, while no shard of the current iteration has been judged).
// The record is written only when work will run with it, after every check of the rerun passed.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { Recipe } from '../recipe/types.js';
import { fieldByPath, recipeFields, getPath } from '../recipe/fields.js';
import { recipeToYaml } from '../recipe/load.js';
import { writeFileAtomic } from './atomic.js';
import type { EventSink } from '../util/events.js';

// Settings added after runs were recorded without them, whose value then was not today's default:
// what those runs did. (Runs before lengths.truncation cut responses by the `fit` rule; they
// resume with --truncation fit.) Other absent settings held their default.
const ABSENT_MEANS: Readonly<Record<string, unknown>> = {
  'lengths.truncation': 'fit',
  'rollout.engine': 'native',
  'rollout.serverCommand': null,
  'rollout.serverStartupSeconds': 900,
};

// The rollout server's command may be fixed (a server that failed to start); the engine choice may not.
const MAY_CHANGE = new Set([
  'iterations', 'output', 'device', 'train.lr', 'train.maxGradNorm', 'train.resumeEvery', 'rollout.batchSize',
  'train.gradientCheckpointing', // memory only: recomputed layers give the stored activations bit for bit
  'rollout.maxBatchTokens', 'rollout.maxRunningSequences', 'rollout.maxCacheTokens', 'rollout.maxSwapTokens',
  'rollout.serverCommand', 'rollout.serverStartupSeconds', 'eval.prompts', 'eval.samples', 'judgeTimeout', 'judgeStartupTimeout',
]);

/** The recorded recipe of a run folder (parsed YAML), or null before the first run. */
export function recordedRecipe(out: string): unknown {
  const file = join(out, 'recipe.resolved.yaml');
  return existsSync(file) ? (parseYaml(readFileSync(file, 'utf8')) as unknown) : null;
}

// A key an older record lacks (a setting added since) held ABSENT_MEANS's value, or its default.
const recordedValue = (old: unknown, path: string): unknown =>
  getPath(old, path) ?? (path in ABSENT_MEANS ? ABSENT_MEANS[path] : fieldByPath.get(path)?.default) ?? null;

const describeChange = (old: unknown, recipe: Recipe, paths: string[]): string =>
  paths.map((p) => `${p} (was ${JSON.stringify(recordedValue(old, p))}, now ${JSON.stringify(getPath(recipe, p))})`).join('; ');

/**
 * Checks `recipe` against the recorded one of a started run and returns the keys that changed;
 * throws, naming them, when a change would alter finished work. Writes nothing: the record is
 * written (writeRecipeRecord) only once every other check has passed, so a refused rerun leaves it
 * as it was. `alsoMayChange`: keys that no finished work depends on in this run folder right now.
 */
export function checkRecipeChange(out: string, recipe: Recipe, alsoMayChange: readonly string[] = []): string[] {
  const old = recordedRecipe(out);
  if (old === null) return [];
  const changed = recipeFields
    .map((f) => f.path)
    .filter((p) => JSON.stringify(recordedValue(old, p)) !== JSON.stringify(getPath(recipe, p) ?? null));
  const blocking = changed.filter((p) => !MAY_CHANGE.has(p) && !alsoMayChange.includes(p));
  if (blocking.length) {
    throw new Error(
      `run folder ${out} was started with a different recipe: ${describeChange(old, recipe, blocking)}. Rerun with the same settings to resume, or choose a new --output`,
    );
  }
  return changed;
}

/** Records `recipe` as the run's; `changed` (from checkRecipeChange) is noted. */
export function writeRecipeRecord(out: string, recipe: Recipe, onEvent: EventSink, changed: readonly string[] = []): void {
  const file = join(out, 'recipe.resolved.yaml');
  const text = recipeToYaml(recipe);
  if (existsSync(file) && readFileSync(file, 'utf8') === text) return;
  const old = recordedRecipe(out);
  if (old !== null && changed.length) onEvent({ type: 'log', message: `recipe changed on resume: ${describeChange(old, recipe, [...changed])} (recorded in ${file})` });
  writeFileAtomic(file, text);
}
