// `sppo-native train` as one rank of a data-parallel run: resolve the recipe as every rank does,
// join the rendezvous with it (mismatched settings or code are refused there), run the pipeline
// over the session, and make a failure end every rank: this rank's error is sent to the others,
// and a peer's failure aborts the communicator and cancels the native work in flight here.
import { resolve } from 'node:path';
import type { Recipe } from '../recipe/types.js';
import { resolveRecipe } from '../recipe/resolve.js';
import { DEMO_RECIPE } from '../pipeline/demo.js';
import { train, type RunResult } from '../pipeline/pipeline.js';
import type { EventSink } from '../util/events.js';
import { cancelAllNativeWork } from '../model/engine.js';
import type { LaunchEnv } from './launchEnv.js';
import { rendezvous } from './rendezvous.js';
import type { DistOptions } from './session.js';

/** Everything that must be equal on every rank, as strings: the resolved recipe and the launch options. */
export function rankSettings(recipe: Recipe, options: DistOptions, worldSize: number): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (v: unknown, path: string): void => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) walk(x, path ? `${path}.${k}` : k);
    } else {
      out[path] = JSON.stringify(v);
    }
  };
  walk({ ...recipe, output: resolve(recipe.output), model: recipe.model === 'demo' ? 'demo' : resolve(recipe.model) }, '');
  out['dist.worldSize'] = String(worldSize);
  out['dist.zero1'] = String(options.zero1);
  out['dist.judgeOn'] = options.judgeOn;
  out['dist.timeout'] = String(options.timeoutS);
  return out;
}

export interface RankTrainRequest {
  src: { recipeFile?: string; overrides: Record<string, unknown> };
  env: LaunchEnv;
  options: DistOptions;
  onEvent: EventSink;
}

export async function trainAsRank(r: RankTrainRequest): Promise<RunResult> {
  const { recipe } = resolveRecipe({ recipeFile: r.src.recipeFile, demoRecipeFile: DEMO_RECIPE, overrides: r.src.overrides });
  const session = await rendezvous({
    env: r.env,
    options: r.options,
    device: recipe.device,
    settings: rankSettings(recipe, r.options, r.env.worldSize),
    onFailure: () => cancelAllNativeWork(),
  });
  // Launched by sppo-native's launcher: a launcher that is gone (killed) ends its ranks.
  const launcher = Number(process.env.SPPO_LAUNCHER_PID);
  const watch = Number.isInteger(launcher) && launcher > 0
    ? setInterval(() => {
      if (process.ppid !== launcher) session.fail(`its launcher (pid ${launcher}) exited`);
    }, 1000)
    : undefined;
  watch?.unref();
  try {
    return await train(recipe, { onEvent: r.onEvent, dist: session });
  } catch (err) {
    // A peer's failure surfaces here as whatever it interrupted (a cancelled call, an aborted
    // collective): its reason, which names the rank, is the message.
    if (session.failure) throw new Error(`${session.failure.message}; rank ${r.env.rank} stopped (finished work is kept: rerun the same command to resume)`);
    session.fail((err as Error).message);
    throw err;
  } finally {
    clearInterval(watch);
    await session.close();
  }
}
