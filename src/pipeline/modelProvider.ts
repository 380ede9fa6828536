// Where models come from. The pipeline takes a ModelProvider so that tests can run every stage
// on a fake model; the default provider is the native engine (src/model/engine.ts).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DeviceName } from '../native/addon.js';
import type { ModelPrecision } from '../model/engine.js';
import type { ModelHandle } from '../model/types.js';

export interface ModelProvider {
  /** `precision`: the engine's numeric mode (default fp32); providers with one mode may ignore it. */
  load(folder: string, device: DeviceName, precision?: ModelPrecision): Promise<ModelHandle>;
  /** A deterministic random model with `config` (config.json fields), in memory. */
  createRandom(config: Record<string, unknown>, seed: number, device: DeviceName, precision?: ModelPrecision): Promise<ModelHandle>;
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
  async load(folder, device, precision) {
    return (await loadEngine()).loadModel(folder, { device, ...(precision ? { precision } : {}) });
  },
  async createRandom(config, seed, device, precision) {
    return (await loadEngine()).createRandomModel(config, seed, { device, ...(precision ? { precision } : {}) });
  },
};

/**
 * Fails early, with the engine's own reason, when `provider` cannot run on `device`: a tiny random
 * model is created there and freed. Called before any rollout so that `--device cuda` on a build or
 * machine without it is refused at once, not after the prompts are read and the run recorded.
 */
export async function checkDevice(provider: ModelProvider, device: DeviceName, precision?: ModelPrecision): Promise<void> {
  if (device === 'cpu') return; // the reference backend; every build has it (fp32, bf16 emulated)
  const { DEMO_DIR } = await import('./demo.js');
  const config = JSON.parse(readFileSync(join(DEMO_DIR, 'model-config.json'), 'utf8')) as Record<string, unknown>;
  let m: ModelHandle;
  try {
    m = await provider.createRandom(config, 0, device, precision);
  } catch (err) {
    const { nvidiaDriverVersion } = await import('../info.js');
    const noDriver = process.platform === 'linux' && nvidiaDriverVersion() === null ? ' (no NVIDIA GPU driver is loaded on this machine)' : '';
    const what = precision && precision !== 'fp32' ? `--device ${device} with precision ${precision}` : `--device ${device}`;
    throw new Error(`${what} cannot be used: ${(err as Error).message}${noDriver}`);
  }
  m.free();
}
