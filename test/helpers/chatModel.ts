// A tiny chat model folder for the server and client suites: the demo's word-level tokenizer and
// chat template with random Llama weights (src/model/randomFolder.ts), optionally with extra
// words in the vocabulary (the LLM judge's answer letters "A" and "B"; the demo's lowercasing
// normalizer is then dropped so that they stay upper case).
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEMO_DIR } from '../../src/pipeline/demo.js';
import { writeRandomModelFolder } from '../../src/model/randomFolder.js';

export function writeChatModel(folder: string, seed: number, extraWords: readonly string[] = [], onlyWords?: readonly string[]): string {
  const config = JSON.parse(readFileSync(join(DEMO_DIR, 'model-config.json'), 'utf8')) as Record<string, unknown>;
  const tok = JSON.parse(readFileSync(join(DEMO_DIR, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> }; normalizer: unknown };
  // onlyWords: the five special tokens (ids 0-4) and these words alone; other words read as <unk>.
  if (onlyWords) tok.model.vocab = Object.fromEntries([...Object.entries(tok.model.vocab).filter(([, id]) => id < 5), ...onlyWords.map((w, i) => [w, 5 + i] as const)]);
  let size = Object.keys(tok.model.vocab).length;
  for (const w of extraWords) if (!(w in tok.model.vocab)) tok.model.vocab[w] = size++;
  if (extraWords.length || onlyWords) tok.normalizer = null;
  config.vocab_size = size;
  writeRandomModelFolder(folder, config, seed);
  writeFileSync(join(folder, 'tokenizer.json'), JSON.stringify(tok));
  copyFileSync(join(DEMO_DIR, 'tokenizer_config.json'), join(folder, 'tokenizer_config.json'));
  return folder;
}
