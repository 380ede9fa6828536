// Reference log-probabilities: log pi_t(y|x) of every chosen and rejected response, computed once
// per iteration before any step (pi_t is frozen for the whole iteration) and saved, so a resumed
// run never recomputes them from a partly trained model.
import { existsSync } from 'node:fs';
import type { ModelHandle, ScoredSequence } from '../model/types.js';
import { readParquet, writeParquet } from '../data/parquet.js';
import type { PairSequences } from './sequences.js';

export interface RefLogprobs {
  chosen: number[];
  rejected: number[];
}

export async function computeRefLogprobs(model: ModelHandle, seqs: PairSequences[], batch: number, tick: (n: number) => void = () => {}): Promise<RefLogprobs> {
  const chosen: number[] = [];
  const rejected: number[] = [];
  for (let b = 0; b < seqs.length; b += batch) {
    const chunk = seqs.slice(b, b + batch);
    const flat: ScoredSequence[] = chunk.flatMap((p) => [p.chosen, p.rejected]);
    const lp = await model.sequenceLogprobs(flat);
    if (lp.length !== flat.length) throw new Error(`sequenceLogprobs returned ${lp.length} values for ${flat.length} sequences`);
    chunk.forEach((_, i) => {
      const c = lp[2 * i]!;
      const r = lp[2 * i + 1]!;
      if (!Number.isFinite(c) || !Number.isFinite(r)) throw new Error(`reference log-probability of pair ${b + i} is not finite (${c}, ${r})`);
      chosen.push(c);
      rejected.push(r);
    });
    tick(chunk.length);
  }
  return { chosen, rejected };
}

export function writeRefLogprobs(file: string, ref: RefLogprobs): void {
  writeParquet(file, [
    { name: 'ref_chosen_logp', kind: 'double', data: ref.chosen },
    { name: 'ref_rejected_logp', kind: 'double', data: ref.rejected },
  ]);
}

export async function readRefLogprobs(file: string, expected: number): Promise<RefLogprobs | null> {
  if (!existsSync(file)) return null;
  const t = await readParquet(file);
  if (t.rows.length !== expected) throw new Error(`${file} has ${t.rows.length} rows but the train table has ${expected}; delete it to recompute`);
  return { chosen: t.rows.map((r) => r.ref_chosen_logp as number), rejected: t.rows.map((r) => r.ref_rejected_logp as number) };
}
