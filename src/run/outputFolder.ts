// The output folder of a command, made ready before any work: created (with an error in words
// when it cannot be), refused when it is a file, and refused when it already holds files that are
// not this kind of output (an unrelated folder would get run files mixed into it).
import { accessSync, constants, mkdirSync, readdirSync, statSync } from 'node:fs';
import { fsError, fsErrorWords } from '../util/fsErrors.js';
import { LOG_FILE } from './runLog.js';

export type OutputKind = 'run' | 'generate';

const TEMP = /^\..+\.tmp-\d+-[0-9a-f]{8}$/;

const MARKERS: Record<OutputKind, (name: string) => boolean> = {
  run: (n) => ['recipe.resolved.yaml', 'prompt-parts.json', 'summary.json', 'base-model', 'eval'].includes(n) || /^iter-\d+$/.test(n),
  generate: (n) => ['generate.json', 'rollout', 'generated.parquet', 'judged.parquet', 'train.parquet'].includes(n),
};

const WHAT: Record<OutputKind, string> = { run: 'run folder', generate: 'output folder' };

export function prepareOutputFolder(folder: string, kind: OutputKind): void {
  const what = WHAT[kind];
  let isDir: boolean | null = null;
  try {
    isDir = statSync(folder).isDirectory();
  } catch {
    isDir = null; // does not exist (or cannot be looked at: mkdir says why)
  }
  if (isDir === false) throw new Error(`--output ${folder} is a file, not a folder; name a new or existing ${what}`);
  if (isDir === null) {
    try {
      mkdirSync(folder, { recursive: true });
    } catch (err) {
      throw fsError(err, `create the ${what}`, folder);
    }
    return;
  }
  try {
    accessSync(folder, constants.W_OK);
  } catch (err) {
    throw new Error(`the ${what} ${folder} is not writable: ${fsErrorWords(err)}`);
  }
  let names: string[];
  try {
    names = readdirSync(folder);
  } catch (err) {
    throw new Error(`cannot read the ${what} ${folder}: ${fsErrorWords(err)}`);
  }
  const ours = (n: string): boolean => MARKERS[kind](n) || n === LOG_FILE || n === '.lock' || TEMP.test(n);
  if (names.length > 0 && !names.some(ours)) {
    const shown = names.slice(0, 5).join(', ') + (names.length > 5 ? `, … (${names.length} entries)` : '');
    throw new Error(
      `--output ${folder} is a folder that is not empty and holds no sppo-native ${kind === 'run' ? 'run' : 'generate output'} (it holds ${shown}); ` +
        `name a new or empty folder, so that the ${what}'s files do not mix with others`,
    );
  }
}
