// A tokenizer that can produce ids the model has no embedding for belongs to another model: refused
// when the folders are loaded, naming both sizes, rather than when a prompt first holds such an id.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TextCodec } from './codec.js';

export function checkTokenizerFits(codec: TextCodec, modelFolder: string, tokenizerFolder: string = codec.folder): void {
  let vocab: unknown;
  try {
    vocab = (JSON.parse(readFileSync(join(modelFolder, 'config.json'), 'utf8')) as Record<string, unknown>).vocab_size;
  } catch {
    return; // the model's own loading reports an unreadable config.json
  }
  if (typeof vocab !== 'number' || !Number.isInteger(vocab)) return;
  const max = codec.maxTokenId;
  if (max >= vocab) {
    throw new Error(
      `the tokenizer of ${tokenizerFolder} (tokenizer.json: ${codec.vocabSize} tokens, ids up to ${max}) does not fit the model ${modelFolder}, ` +
        `whose config.json has vocab_size ${vocab}: the model has no embedding for ids ${vocab} and above. Use the tokenizer files that came with the model`,
    );
  }
}

/** The largest id a tokenizer.json defines (its model's vocabulary and its added tokens), read as JSON. */
export function tokenizerMaxId(tokenizerJson: string): number {
  let j: { model?: { vocab?: unknown }; added_tokens?: { id?: unknown }[] };
  try {
    j = JSON.parse(readFileSync(tokenizerJson, 'utf8')) as typeof j;
  } catch (err) {
    throw new Error(`${tokenizerJson} is not a readable tokenizer file: ${(err as Error).message}`);
  }
  let max = -1;
  const vocab = j.model?.vocab;
  if (Array.isArray(vocab)) max = vocab.length - 1; // Unigram: [[token, score], ...]
  else if (vocab && typeof vocab === 'object') for (const id of Object.values(vocab)) if (typeof id === 'number' && id > max) max = id;
  for (const t of j.added_tokens ?? []) if (typeof t.id === 'number' && t.id > max) max = t.id;
  return max;
}
