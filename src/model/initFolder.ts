// `sppo-native init-model`: a Hugging Face model folder with random weights for a config.json (or
// a preset size), plus tokenizer files so that `train` and `generate` can use it at once. Written
// in a temp folder and renamed into place, so an interrupted run leaves no half-written model.
import { copyFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeDirAtomic } from '../run/atomic.js';
import { tokenizerMaxId } from '../text/vocabFit.js';
import { writeRandomModelFolder } from './randomFolder.js';
import type { LoadableDtype } from './safetensors.js';
import { parameterCount } from './presets.js';

export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja'];

export interface InitModelOptions {
  output: string;
  config: Record<string, unknown>;
  /** Where the config came from, for messages. */
  configSource: string;
  seed: number;
  dtype: LoadableDtype;
  /** A folder whose tokenizer files are copied, or null for none. */
  tokenizerFrom: string | null;
  /** Shard the weights above this many bytes (default 2 GB; one Node buffer holds at most 4 GiB). */
  maxShardBytes?: number;
  log?: (line: string) => void;
}

export async function initModelFolder(o: InitModelOptions): Promise<{ folder: string; parameters: number; tokenizer: boolean }> {
  const log = o.log ?? (() => {});
  if (existsSync(o.output) && (!statSync(o.output).isDirectory() || readdirSync(o.output).length > 0)) {
    throw new Error(`--output ${o.output} already exists and is not an empty folder; init-model writes a new model folder only`);
  }
  const parameters = parameterCount(o.config, o.configSource);
  const bytes = parameters * (o.dtype === 'F32' ? 4 : 2);
  if (o.tokenizerFrom) {
    // Checked before the (possibly long) weight writing: the tokenizer must fit the vocabulary.
    const file = join(o.tokenizerFrom, 'tokenizer.json');
    if (!existsSync(file)) throw new Error(`--tokenizer-from ${o.tokenizerFrom} has no tokenizer.json`);
    const max = tokenizerMaxId(file);
    const vocab = o.config.vocab_size;
    if (typeof vocab === 'number' && max >= vocab) {
      throw new Error(`--tokenizer-from ${o.tokenizerFrom}: its ids go up to ${max}, but the config's vocab_size is ${vocab}; use a tokenizer of at most ${vocab} tokens or a larger vocab_size`);
    }
  }
  log(`writing a random model of ${(parameters / 1e6).toFixed(2)}M parameters (${(bytes / 1e9).toFixed(2)} GB of ${o.dtype}, seed ${o.seed}) to ${o.output}`);
  await writeDirAtomic(o.output, async (tmp) => {
    writeRandomModelFolder(tmp, o.config, o.seed, { dtype: o.dtype, maxShardBytes: o.maxShardBytes ?? 2e9 });
    if (o.tokenizerFrom) {
      for (const f of TOKENIZER_FILES) if (existsSync(join(o.tokenizerFrom, f))) copyFileSync(join(o.tokenizerFrom, f), join(tmp, f));
    }
  });
  return { folder: o.output, parameters, tokenizer: o.tokenizerFrom !== null };
}
