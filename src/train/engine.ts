// Where models come from. The pipeline takes a ModelProvider so that tests can run every stage
// on a fake model; the default provider is the native engine (src/model/engine.ts).
import type { DeviceName } from '../native.js';
import type { ModelHandle } from '../model/types.js';

export interface ModelProvider {
  load(folder: string, device: DeviceName): Promise<ModelHandle>;
  /** A deterministic random model with `config` (config.json fields), in memory. */
  createRandom(config: Record<string, unknown>, seed: number, device: DeviceName): Promise<ModelHandle>;
}

type EngineModule = typeof import('../model/engine.js');

let engine: Promise<EngineModule> | undefined;

function loadEngine(): Promise<EngineModule> {
  // Imported lazily: commands that need no model (judge with a builtin judge, --help) must not
  // load the addon.
  engine ??= import('../model/engine.js');
  return engine;
}

export const nativeEngine: ModelProvider = {
  async load(folder, device) {
    return (await loadEngine()).loadModel(folder, { device });
  },
  async createRandom(config, seed, device) {
    return (await loadEngine()).createRandomModel(config, seed, { device });
  },
};
