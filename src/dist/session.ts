// A data-parallel run as one rank sees it (CONTRACT for the pipeline and the stages): who it is,
// the communicator its trainer reduces gradients with, and the rendezvous store's barriers and
// gathers for everything else (stage boundaries, step metrics). `alone()` is the world of one
// process, where every meeting is immediate, so the pipeline has one code path.
import type { NativeCommunicator } from '../native/addon.js';
import type { DistFailure } from './storeClient.js';

/** Where command judges run: on every rank, once per node (local rank 0), or on rank 0 only. */
export const JUDGE_PLACEMENTS = ['auto', 'all', 'node', 'rank0'] as const;
export type JudgePlacement = (typeof JUDGE_PLACEMENTS)[number];

export interface DistOptions {
  /** Seconds a rank may wait for a collective, a peer's heartbeat or the rendezvous. */
  timeoutS: number;
  /** Shard the optimizer state over the ranks (ZeRO-1). */
  zero1: boolean;
  judgeOn: JudgePlacement;
}

export const DEFAULT_DIST_OPTIONS: DistOptions = { timeoutS: 600, zero1: false, judgeOn: 'auto' };

export interface DistSession {
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly localWorldSize: number;
  readonly nodeRank: number;
  /** Rank 0: writes the run folder's shared files (tables, metrics, checkpoints, records). */
  readonly isMain: boolean;
  readonly options: DistOptions;
  /** The gradient communicator (host or NCCL); undefined alone (the trainer uses a local one). */
  readonly communicator: NativeCommunicator | undefined;
  /** Every rank reaches `name` (names must agree: the n-th meeting of each rank is the same). */
  barrier(name: string): Promise<void>;
  /** Every rank's `value`, in rank order. */
  gather<T>(name: string, value: T): Promise<T[]>;
  /** The failure of a peer or of the rendezvous (it names the rank), once one happened. */
  readonly failure: DistFailure | null;
  onFailure(cb: (e: DistFailure) => void): void;
  /** Tells the other ranks that this one failed, with why. */
  fail(reason: string): void;
  close(): Promise<void>;
}

export function alone(options: DistOptions = DEFAULT_DIST_OPTIONS): DistSession {
  return {
    rank: 0,
    worldSize: 1,
    localRank: 0,
    localWorldSize: 1,
    nodeRank: 0,
    isMain: true,
    options,
    communicator: undefined,
    barrier: async () => {},
    gather: async <T>(_name: string, value: T) => [value],
    failure: null,
    onFailure: () => {},
    fail: () => {},
    close: async () => {},
  };
}

/** Items [0, n) that rank `rank` of `world` owns: every world-th, starting at its rank. */
export function ownsShard(i: number, rank: number, world: number): boolean {
  return i % world === rank;
}

/** Rank `rank`'s contiguous part [lo, hi) of n items split as evenly as possible over `world`. */
export function contiguousPart(n: number, rank: number, world: number): [number, number] {
  return [Math.floor((n * rank) / world), Math.floor((n * (rank + 1)) / world)];
}
