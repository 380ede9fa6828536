// The built-in demo: a tiny Llama (created deterministically on first run), a word-level
// tokenizer, bundled prompts, the builtin:demo judge and its own recipe, all under data/demo/.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../native/addon.js';
import type { DeviceName } from '../native/addon.js';
import { writeDirAtomic } from '../run/atomic.js';
import type { ModelProvider } from './modelProvider.js';

export const DEMO_DIR = join(packageRoot, 'data', 'demo');
export const DEMO_RECIPE = join(DEMO_DIR, 'recipe.yaml');
export const DEMO_MODEL_SEED = 1234;

/** Creates the demo base model in `folder` (once; atomically) and returns the folder. */
export async function ensureDemoModel(folder: string, provider: ModelProvider, device: DeviceName): Promise<string> {
  if (existsSync(join(folder, 'config.json'))) return folder;
  const config = JSON.parse(readFileSync(join(DEMO_DIR, 'model-config.json'), 'utf8')) as Record<string, unknown>;
  const model = await provider.createRandom(config, DEMO_MODEL_SEED, device);
  try {
    await writeDirAtomic(folder, (tmp) => model.save(tmp, { tokenizerFrom: DEMO_DIR, dtype: 'float32' }));
  } finally {
    model.free();
  }
  return folder;
}
