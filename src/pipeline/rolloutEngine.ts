// The rollout engine of an iteration (recipe rollout.engine): the engine's own policy, or an
// OpenAI-compatible server serving it (started from rollout.serverCommand, or checked). Opened
// when the rollout needs samples, closed when the stage ends.
import { join } from 'node:path';
import type { ModelHandle } from '../model/types.js';
import type { Recipe } from '../recipe/types.js';
import type { TextCodec } from '../text/codec.js';
import type { EventSink } from '../util/events.js';
import { engineSource, type ResponseSource } from '../stages/responseSource.js';
import { parseRolloutEngine, ServedPolicy } from '../openai/servedPolicy.js';
import { OpenAIRolloutSource } from '../openai/rolloutSource.js';
import { contextWindow } from '../stages/contextWindow.js';
import { readModelConfig } from '../model/config.js';

export interface RolloutEngine {
  source: () => Promise<ResponseSource>;
  close(): Promise<void>;
}

export interface RolloutEngineContext {
  recipe: Recipe;
  iterDir: string;
  policyFolder: string;
  baseModel: string;
  getPolicy: () => Promise<ModelHandle>;
  codec: TextCodec;
  onEvent: EventSink;
}

/** Checks the recipe's rollout settings (before any work). */
export function checkRolloutEngine(r: Recipe): void {
  const spec = parseRolloutEngine(r.rollout.engine);
  if (spec.kind === 'native' && r.rollout.serverCommand) throw new Error(`rollout.serverCommand is set but rollout.engine is 'native'; give --rollout-engine openai:<base-url>`);
}

/** The policy folder's context window (its config.json max_position_embeddings), or null. */
function policyWindow(folder: string): number | null {
  return contextWindow(readModelConfig(folder).config.raw);
}

export function openRolloutEngine(c: RolloutEngineContext): RolloutEngine {
  const spec = parseRolloutEngine(c.recipe.rollout.engine);
  if (spec.kind === 'native') return { source: async () => engineSource(await c.getPolicy(), c.codec), close: async () => {} };
  let served: ServedPolicy | undefined;
  let source: OpenAIRolloutSource | undefined;
  const log = (message: string): void => c.onEvent({ type: 'log', message });
  return {
    async source() {
      if (source) return source;
      served = await ServedPolicy.open({
        baseUrl: spec.baseUrl,
        baseModelName: spec.model,
        command: c.recipe.rollout.serverCommand,
        startupSeconds: c.recipe.rollout.serverStartupSeconds,
        policyFolder: c.policyFolder,
        baseModel: c.baseModel,
        logFile: join(c.iterDir, 'rollout-server.log'),
        onLog: log,
      });
      source = new OpenAIRolloutSource({ client: served.client, model: served.model, codec: c.codec, window: policyWindow(c.policyFolder) });
      return source;
    },
    async close() {
      const line = source?.report();
      if (line) log(line);
      await served?.close();
    },
  };
}
