// recipe.resolved.yaml: the full recipe of a run, written when it starts. A rerun with a recipe
// that would change finished work (model, prompts, sampling, judge, loss, batch shape...) is
// refused with the differing keys named; settings that only steer what is still to come
// (iterations, lr, clipping, resume frequency, eval, device, output) may change, with a note.
// The caller may allow more (the judge, while no shard of the current iteration has been judged).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { Recipe } from '../recipe/types.js';
import { recipeFields, getPath } from '../recipe/fields.js';
import { recipeToYaml } from '../recipe/load.js';
import { writeFileAtomic } from './atomic.js';
import type { EventSink } from '../util/events.js';

// Settings added after runs were recorded without them: what those runs did. (Runs before
// lengths.truncation cut responses by the `fit` rule; they resume with --truncation fit.)
const ABSENT_MEANS: Readonly<Record<string, unknown>> = {
  'lengths.truncation': 'fit',
  'rollout.engine': 'native',
  'rollout.serverCommand': null,
  'rollout.serverStartupSeconds': 900,
};

// The rollout server's command may be fixed (a server that failed to start); the engine choice may not.
const MAY_CHANGE = new Set(['iterations', 'output', 'device', 'train.lr', 'train.maxGradNorm', 'train.resumeEvery', 'rollout.batchSize', 'rollout.serverCommand', 'rollout.serverStartupSeconds', 'eval.prompts', 'eval.samples']);

/** The recorded recipe of a run folder (parsed YAML), or null before the first run. */
export function recordedRecipe(out: string): unknown {
  const file = join(out, 'recipe.resolved.yaml');
  return existsSync(file) ? (parseYaml(readFileSync(file, 'utf8')) as unknown) : null;
}

/**
 * `started`: whether any work exists yet; before that, the recipe may change freely.
 * `alsoMayChange`: keys that no finished work depends on in this run folder right now.
 */
export function recordRecipe(out: string, recipe: Recipe, onEvent: EventSink, started = true, alsoMayChange: readonly string[] = []): void {
  const file = join(out, 'recipe.resolved.yaml');
  if (existsSync(file) && started) {
    const old = parseYaml(readFileSync(file, 'utf8')) as unknown;
    const was = (p: string): unknown => {
      const v = getPath(old, p);
      return v === undefined && p in ABSENT_MEANS ? ABSENT_MEANS[p] : v;
    };
    const changed = recipeFields
      .map((f) => f.path)
      .filter((p) => JSON.stringify(was(p) ?? null) !== JSON.stringify(getPath(recipe, p) ?? null));
    const blocking = changed.filter((p) => !MAY_CHANGE.has(p) && !alsoMayChange.includes(p));
    if (blocking.length) {
      const detail = blocking.map((p) => `${p} (was ${JSON.stringify(was(p))}, now ${JSON.stringify(getPath(recipe, p))})`).join('; ');
      throw new Error(`run folder ${out} was started with a different recipe: ${detail}. Rerun with the same settings to resume, or choose a new --output`);
    }
    const detail = changed.map((p) => `${p} (was ${JSON.stringify(was(p))}, now ${JSON.stringify(getPath(recipe, p))})`).join('; ');
    if (changed.length) onEvent({ type: 'log', message: `recipe changed on resume: ${detail} (recorded in ${file})` });
    else return;
  }
  writeFileAtomic(file, recipeToYaml(recipe));
}
