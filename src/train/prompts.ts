// The prompts of each iteration, pinned in the run folder (iter-t/prompts.jsonl) the first time,
// so that a resumed run uses exactly the prompts it started with.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Recipe } from '../recipe/types.js';
import { loadPrompts, type PromptSet } from '../data/prompts.js';
import { splitDisjoint } from '../data/split.js';
import { writeFileAtomic } from '../run/atomic.js';
import type { EventSink } from '../util/events.js';

function describeSet(s: PromptSet): string {
  return `${s.source}: ${s.prompts.length} prompts (${s.rows} rows; dropped ${s.droppedEmpty} empty, ${s.droppedDuplicate} duplicate)`;
}

/** Prompts of every iteration, from the recipe (not yet pinned). */
export async function iterationPrompts(r: Recipe, onEvent: EventSink): Promise<string[][]> {
  let parts: string[][];
  if (r.prompts.length > 1) {
    parts = [];
    for (const file of r.prompts) {
      const set = await loadPrompts(file, r.promptColumn);
      onEvent({ type: 'log', message: describeSet(set) });
      parts.push(set.prompts);
    }
  } else {
    const set = await loadPrompts(r.prompts[0]!, r.promptColumn);
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
