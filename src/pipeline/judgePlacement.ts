// Which rank judges which shard under data parallelism (the recipe's judge, the --judge-on
// placement): "all" spreads the shards over every rank (in-process judges: builtin, reward
// models, precomputed files); "node" over the first rank of each node (a command judge, one
// process per node: it usually loads its own model on the node's GPUs); "rank0" gives every shard
// to rank 0 (an LLM judge behind one server). "auto" picks by the judge's kind.
import { parseJudgeSpec } from '../judge/spec.js';
import { ownsShard, type DistSession, type JudgePlacement } from '../dist/session.js';

export function judgePlacement(judge: string, placement: JudgePlacement): Exclude<JudgePlacement, 'auto'> {
  if (placement !== 'auto') return placement;
  const kind = parseJudgeSpec(judge).kind;
  return kind === 'command' ? 'node' : kind === 'llm' ? 'rank0' : 'all';
}

/** Whether this rank judges shard i. */
export function judgeOwner(judge: string, dist: DistSession): (shard: number) => boolean {
  const where = judgePlacement(judge, dist.options.judgeOn);
  if (where === 'rank0') return () => dist.isMain;
  if (where === 'all') return (i) => ownsShard(i, dist.rank, dist.worldSize);
  const nodes = Math.max(1, Math.round(dist.worldSize / dist.localWorldSize));
  return (i) => dist.localRank === 0 && ownsShard(i, dist.nodeRank, nodes);
}
