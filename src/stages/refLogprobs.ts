// Reference log-probabilities: log pi_t(y|x) of every chosen and rejected response, computed once
// per iteration before any step (pi_t is frozen for the whole iteration) and saved, so a resumed
// run never recomputes them from a partly trained model. The stage works in shards of whole
// forward batches (reference/shard-*.parquet, resumable; under data parallelism spread over the
// ranks): a pair's value is the same whichever process computes it, since its batch is.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
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

/** Pairs per reference shard: whole forward batches. */
export function referenceShardPairs(batch: number): number {
  return batch * 16;
}

export interface ReferenceStage {
  model: () => Promise<ModelHandle>;
  seqs: PairSequences[];
  /** Pairs per forward (the training micro-batch). */
  batch: number;
  dir: string;      // shards go to dir/reference/
  output: string;   // ref_logprobs.parquet
  /** Data parallel: the shards this process computes (default: all). */
  owns?: (shard: number) => boolean;
  /** Merge the shards into `output` (default true). */
  merge?: boolean;
  /** Called with the pairs already done (once), then with each batch's pairs. */
  tick?: (n: number) => void;
}

export async function runReferenceStage(s: ReferenceStage): Promise<void> {
  const per = referenceShardPairs(s.batch);
  const shards = Math.ceil(s.seqs.length / per);
  const dir = join(s.dir, 'reference');
  mkdirSync(dir, { recursive: true });
  const owns = s.owns ?? (() => true);
  const file = (i: number): string => join(dir, `shard-${String(i).padStart(5, '0')}.parquet`);
  const size = (i: number): number => Math.min(per, s.seqs.length - i * per);
  const tick = s.tick ?? (() => {});
  for (let i = 0; i < shards; i++) {
    if (!owns(i)) continue;
    if (existsSync(file(i))) {
      await readRefLogprobs(file(i), size(i)); // a shard of another shape is refused by name
      tick(size(i));
      continue;
    }
    const model = await s.model();
    writeRefLogprobs(file(i), await computeRefLogprobs(model, s.seqs.slice(i * per, i * per + size(i)), s.batch, tick));
  }
  if (s.merge === false) return;
  const all: RefLogprobs = { chosen: [], rejected: [] };
  for (let i = 0; i < shards; i++) {
    const part = await readRefLogprobs(file(i), size(i));
    if (!part) throw new Error(`reference shard ${file(i)} is missing (a rank did not write it); rerun the same command to compute it`);
    all.chosen.push(...part.chosen);
    all.rejected.push(...part.rejected);
  }
  writeRefLogprobs(s.output, all);
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
