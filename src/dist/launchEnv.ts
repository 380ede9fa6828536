// Where this process stands in a data-parallel run, read from what launchers set (CONTRACT):
// - sppo-native's own launcher (`train --nproc-per-node`), torchrun and Kubernetes training
//   operators: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK / NODE_RANK, MASTER_ADDR,
//   MASTER_PORT;
// - SLURM (inside an `srun` step): SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID,
//   SLURM_NTASKS_PER_NODE / SLURM_STEP_TASKS_PER_NODE, SLURM_NODEID, SLURM_STEP_NODELIST (the first
//   host is the master unless MASTER_ADDR says otherwise), MASTER_PORT (default 29500);
// - nothing: one process, world size 1.
// Errors name the variable.
import { firstHost } from './hostlist.js';

export type LaunchSource = 'single' | 'env' | 'slurm';

export interface LaunchEnv {
  source: LaunchSource;
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /** The rendezvous store is hosted by a launcher (ours), not by rank 0. */
  storeHosted: boolean;
}

export const DEFAULT_MASTER_PORT = 29500;

function int(env: NodeJS.ProcessEnv, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  const v = Number(raw);
  if (raw === undefined || raw.trim() === '' || !Number.isInteger(v) || v < min || v > max) {
    throw new Error(`environment variable ${name} must be an integer in [${min}, ${max}] (got ${raw === undefined ? 'nothing' : JSON.stringify(raw)})`);
  }
  return v;
}

function optionalInt(env: NodeJS.ProcessEnv, name: string, min: number, max?: number): number | undefined {
  return env[name] === undefined || env[name] === '' ? undefined : int(env, name, min, max);
}

function port(env: NodeJS.ProcessEnv): number {
  return optionalInt(env, 'MASTER_PORT', 1, 65535) ?? DEFAULT_MASTER_PORT;
}

/** SLURM_STEP_TASKS_PER_NODE "2(x3),1" -> tasks on node `node`. */
function slurmTasksOnNode(spec: string, node: number): number | undefined {
  let i = 0;
  for (const part of spec.split(',')) {
    const m = /^(\d+)(?:\(x(\d+)\))?$/.exec(part.trim());
    if (!m) return undefined;
    const n = Number(m[1]);
    const times = m[2] ? Number(m[2]) : 1;
    if (node < i + times) return n;
    i += times;
  }
  return undefined;
}

export function readLaunchEnv(env: NodeJS.ProcessEnv = process.env): LaunchEnv {
  const storeHosted = env.SPPO_STORE_HOSTED === '1';
  if (env.RANK !== undefined || env.WORLD_SIZE !== undefined) {
    const worldSize = int(env, 'WORLD_SIZE', 1);
    const rank = int(env, 'RANK', 0, worldSize - 1);
    const localWorldSize = optionalInt(env, 'LOCAL_WORLD_SIZE', 1) ?? 1;
    const localRank = optionalInt(env, 'LOCAL_RANK', 0, localWorldSize - 1) ?? (localWorldSize > 1 ? rank % localWorldSize : 0);
    const nodeRank = optionalInt(env, 'GROUP_RANK', 0) ?? optionalInt(env, 'NODE_RANK', 0) ?? Math.floor(rank / localWorldSize);
    if (worldSize > 1 && !env.MASTER_ADDR) throw new Error(`environment variable MASTER_ADDR must name the rendezvous host (RANK=${rank}, WORLD_SIZE=${worldSize} are set)`);
    return { source: 'env', rank, worldSize, localRank, localWorldSize, nodeRank, masterAddr: env.MASTER_ADDR ?? '127.0.0.1', masterPort: port(env), storeHosted };
  }
  // Inside an srun step (not the batch script itself, which has SLURM_PROCID=0 of SLURM_NTASKS too).
  if (env.SLURM_PROCID !== undefined && env.SLURM_STEP_ID !== undefined && env.SLURM_NTASKS !== undefined) {
    const worldSize = int(env, 'SLURM_NTASKS', 1);
    if (worldSize > 1) {
      const rank = int(env, 'SLURM_PROCID', 0, worldSize - 1);
      const nodeRank = optionalInt(env, 'SLURM_NODEID', 0) ?? 0;
      const localRank = optionalInt(env, 'SLURM_LOCALID', 0) ?? 0;
      const perNode = optionalInt(env, 'SLURM_NTASKS_PER_NODE', 1)
        ?? (env.SLURM_STEP_TASKS_PER_NODE ? slurmTasksOnNode(env.SLURM_STEP_TASKS_PER_NODE, nodeRank) : undefined)
        ?? localRank + 1;
      const list = env.SLURM_STEP_NODELIST ?? env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST;
      const masterAddr = env.MASTER_ADDR || (list ? firstHost(list) : '');
      if (!masterAddr) throw new Error('under SLURM, set MASTER_ADDR (no SLURM_STEP_NODELIST to take the first host from)');
      if (localRank >= perNode) throw new Error(`SLURM_LOCALID ${localRank} is not below the tasks on this node (${perNode})`);
      return { source: 'slurm', rank, worldSize, localRank, localWorldSize: perNode, nodeRank, masterAddr, masterPort: port(env), storeHosted };
    }
  }
  return { source: 'single', rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: port(env), storeHosted };
}
