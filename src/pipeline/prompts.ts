// The prompts of each iteration, pinned in the run folder the first time: every iteration's part
// is written to iter-t/prompts.jsonl before the first rollout, and prompt-parts.json records how
// many parts there are and digests of the prompt files. A resumed run reads only the pinned parts,
// so a changed --iterations or an edited prompt file can never make two iterations share prompts.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Recipe } from '../recipe/types.js';
import { loadPrompts, parquetShards, type PromptSet } from '../data/prompts.js';
import { splitDisjoint } from '../data/split.js';
import { writeFileAtomic } from '../run/atomic.js';
import type { EventSink } from '../util/events.js';

export const PARTS_FILE = 'prompt-parts.json';

type PartsMode = 'disjoint' | 'reuse' | 'files';

interface PartsRecord {
  /** Pinned parts: iter-1 .. iter-<parts>. */
  parts: number;
  mode: PartsMode;
  sources: { file: string; sha256: string }[];
}

export function describeSet(s: PromptSet): string {
  const replaced = s.replacedInvalidUtf8 ? `; replaced ${s.replacedInvalidUtf8} invalid UTF-8 sequence(s) with U+FFFD` : '';
  return `${s.source}: ${s.prompts.length} prompts (${s.rows} rows; dropped ${s.droppedEmpty} empty, ${s.droppedDuplicate} duplicate${replaced})`;
}

const load = (r: Recipe, file: string): Promise<PromptSet> => loadPrompts(file, r.promptColumn, { splitName: r.promptSplitName, invalidUtf8: r.promptInvalidUtf8 });

/** Prompts of every iteration, from the recipe (not yet pinned). */
export async function iterationPrompts(r: Recipe, onEvent: EventSink): Promise<string[][]> {
  let parts: string[][];
  if (r.prompts.length > 1) {
    parts = [];
    for (const file of r.prompts) {
      const set = await load(r, file);
      onEvent({ type: 'log', message: describeSet(set) });
      parts.push(set.prompts);
    }
  } else {
    const set = await load(r, r.prompts[0]!);
    onEvent({ type: 'log', message: describeSet(set) });
    parts = r.promptSplit === 'reuse' ? Array.from({ length: r.iterations }, () => set.prompts) : splitDisjoint(set.prompts, r.iterations, r.seed);
  }
  return parts.map((p) => (r.maxPrompts > 0 ? p.slice(0, r.maxPrompts) : p));
}

export function readPinnedPrompts(iterDir: string): string[] | null {
  const file = join(iterDir, 'prompts.jsonl');
  if (!existsSync(file)) return null;
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { prompt: string }).prompt);
}

export function pinPrompts(iterDir: string, prompts: string[]): void {
  writeFileAtomic(join(iterDir, 'prompts.jsonl'), prompts.map((p) => `${JSON.stringify({ prompt: p })}\n`).join(''));
}

/** A digest of a prompt file, or of a dataset folder's Parquet shards (names and bytes). */
function sourceDigest(path: string): string {
  const h = createHash('sha256');
  if (!existsSync(path)) return 'missing';
  if (statSync(path).isDirectory()) {
    for (const f of parquetShards(path)) h.update(f).update(readFileSync(f));
  } else {
    h.update(readFileSync(path));
  }
  return h.digest('hex');
}

const modeOf = (r: Recipe): PartsMode => (r.prompts.length > 1 ? 'files' : r.promptSplit);
const iterDir = (out: string, t: number): string => join(out, `iter-${t}`);

function readRecord(out: string): PartsRecord | null {
  const file = join(out, PARTS_FILE);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as PartsRecord) : null;
}

function writeRecord(out: string, r: Recipe, parts: number): void {
  const rec: PartsRecord = { parts, mode: modeOf(r), sources: r.prompts.map((file) => ({ file, sha256: sourceDigest(file) })) };
  writeFileAtomic(join(out, PARTS_FILE), `${JSON.stringify(rec, null, 2)}\n`);
}

/** Removes the pins of a run that has not started (no rollout yet), so the prompts are re-read. */
function removePins(out: string): void {
  rmSync(join(out, PARTS_FILE), { force: true });
  for (const name of existsSync(out) ? readdirSync(out) : []) {
    if (/^iter-\d+$/.test(name)) rmSync(join(out, name, 'prompts.jsonl'), { force: true });
  }
}

/**
 * Pins every iteration's prompts. Before the run has started (`started` false) the prompt files
 * are read and split now; afterwards only the pinned parts count: more iterations than parts is
 * refused (a `reuse` split extends with the same prompts), and an edited prompt file is noted.
 * `recordedIterations`: the iteration count of a run folder pinned by an older version that
 * wrote no prompt-parts.json (it pinned each part only when its iteration began).
 */
export async function pinIterationPrompts(
  out: string,
  r: Recipe,
  onEvent: EventSink,
  started: boolean,
  recordedIterations: number = r.iterations,
): Promise<void> {
  if (!started) {
    removePins(out);
    const parts = await iterationPrompts(r, onEvent);
    parts.forEach((p, i) => pinPrompts(iterDir(out, i + 1), p));
    writeRecord(out, r, parts.length); // last: its presence means every part is pinned
    return;
  }
  let rec = readRecord(out);
  if (!rec) {
    // An older run folder: pin the parts it would have made, keeping those already pinned.
    const parts = await iterationPrompts({ ...r, iterations: recordedIterations }, onEvent);
    const added: number[] = [];
    parts.forEach((p, i) => {
      if (!readPinnedPrompts(iterDir(out, i + 1))) {
        pinPrompts(iterDir(out, i + 1), p);
        added.push(i + 1);
      }
    });
    if (added.length) onEvent({ type: 'log', message: `pinned the prompts of iteration(s) ${added.join(', ')} in ${out} (split into ${parts.length} parts)` });
    writeRecord(out, { ...r, iterations: recordedIterations }, parts.length);
    rec = readRecord(out)!;
  }
  const changed = rec.sources.filter((s) => r.prompts.includes(s.file) && sourceDigest(s.file) !== s.sha256).map((s) => s.file);
  if (changed.length) {
    onEvent({
      type: 'log',
      message: `prompt file(s) ${changed.join(', ')} changed since this run started; the run keeps the prompts pinned at its start (iter-<t>/prompts.jsonl)`,
    });
  }
  if (r.iterations <= rec.parts) return;
  if (rec.mode === 'reuse') {
    // Every iteration uses the whole prompt set: extend with the set pinned at the start.
    const all = readPinnedPrompts(iterDir(out, 1));
    if (!all) throw new Error(`run folder ${out}: iter-1/prompts.jsonl is missing; cannot extend the run to ${r.iterations} iterations`);
    for (let t = rec.parts + 1; t <= r.iterations; t++) pinPrompts(iterDir(out, t), all);
    writeFileAtomic(join(out, PARTS_FILE), `${JSON.stringify({ ...rec, parts: r.iterations }, null, 2)}\n`);
    onEvent({ type: 'log', message: `extended the run to ${r.iterations} iterations, each with the whole prompt set pinned in iter-1/prompts.jsonl` });
    return;
  }
  const how = rec.mode === 'files' ? `one prompt file per iteration (${rec.parts} files)` : `${rec.parts} disjoint part(s), one per iteration`;
  throw new Error(
    `run folder ${out} split its prompts into ${how} when it started, so it can run at most ${rec.parts} iteration(s); ` +
      `iterations is now ${r.iterations}. Rerun with --iterations ${rec.parts} to finish it, or choose a new --output ` +
      `to split the prompts into ${r.iterations} parts`,
  );
}

/** The pinned prompts of iteration `t`; throws when the run folder lacks them. */
export function pinnedPromptsOf(out: string, t: number): string[] {
  const p = readPinnedPrompts(iterDir(out, t));
  if (!p) throw new Error(`run folder ${out}: iter-${t}/prompts.jsonl is missing (the prompts of iteration ${t} were not pinned)`);
  return p;
}

/** All pinned parts, in iteration order. */
export function allPinnedPrompts(out: string): string[][] {
  const rec = readRecord(out);
  if (!rec) throw new Error(`run folder ${out}: ${PARTS_FILE} is missing`);
  return Array.from({ length: rec.parts }, (_, i) => pinnedPromptsOf(out, i + 1));
}
