// Joins a data-parallel run (CONTRACT): hosts the rendezvous store on rank 0 unless a launcher
// does, connects to it, joins with this rank's code version and settings (the store refuses the
// run when any rank differs, naming what), receives rank 0's communicator id (a shared-memory name
// for CPU ranks, an ncclUniqueId for GPUs) and connects the communicator. A failure of any rank
// later aborts the communicator here, so that collectives in flight end at once.
import { hostname } from 'node:os';
import { native, type DeviceName, type NativeCommunicator } from '../native/addon.js';
import { codeVersion } from './codeVersion.js';
import type { LaunchEnv } from './launchEnv.js';
import type { DistOptions, DistSession } from './session.js';
import { DistFailure, StoreClient } from './storeClient.js';
import { StoreServer } from './storeServer.js';

export interface RendezvousRequest {
  env: LaunchEnv;
  options: DistOptions;
  device: DeviceName;
  /** What must be the same on every rank (the resolved recipe, flattened, and the launch options). */
  settings: Record<string, string>;
  /** Called once when a rank fails (after the communicator is aborted), e.g. to cancel native work. */
  onFailure?: (e: DistFailure) => void;
  /** Code version to announce (default: this install's). */
  code?: string;
}

function loopback(addr: string): boolean {
  return addr === 'localhost' || addr.startsWith('127.') || addr === '::1';
}

export async function rendezvous(r: RendezvousRequest): Promise<DistSession> {
  const { env, options } = r;
  const timeoutMs = options.timeoutS * 1000;
  let server: StoreServer | undefined;
  if (env.rank === 0 && !env.storeHosted) {
    server = await StoreServer.start({
      host: loopback(env.masterAddr) ? '127.0.0.1' : '0.0.0.0',
      port: env.masterPort,
      worldSize: env.worldSize,
      heartbeatMs: timeoutMs,
    });
  }
  let client: StoreClient | undefined;
  let comm: NativeCommunicator | undefined;
  try {
    client = await StoreClient.connect(env.masterAddr, server?.port ?? env.masterPort, timeoutMs);
    const kind = r.device === 'cuda' ? 'nccl' : 'host';
    const addon = native();
    if (kind === 'nccl') addon.selectCudaDevice(env.localRank); // rank r uses GPU LOCAL_RANK
    let commId: string | undefined;
    if (env.rank === 0) commId = kind === 'nccl' ? Buffer.from(addon.ncclUniqueId()).toString('base64') : addon.hostCommunicatorName();
    const ready = await client.join({
      worldSize: env.worldSize,
      info: { rank: env.rank, host: hostname(), pid: process.pid, localRank: env.localRank, nodeRank: env.nodeRank },
      code: r.code ?? codeVersion(),
      settings: { ...r.settings, communicator: kind },
      ...(commId !== undefined ? { commId } : {}),
    });
    const connecting = kind === 'nccl'
      ? addon.connectCommunicator({ kind, id: new Uint8Array(Buffer.from(ready.commId, 'base64')), rank: env.rank, worldSize: env.worldSize, timeoutMs })
      : addon.connectCommunicator({ kind, name: ready.commId, rank: env.rank, worldSize: env.worldSize, timeoutMs, heartbeatMs: Math.min(timeoutMs, 10_000) });
    // A rank that dies while the others wait here is reported by the store before the timeout.
    const failed = new Promise<never>((_, reject) => client!.onFailure(reject));
    comm = await Promise.race([connecting, failed]);
    return session(env, options, client, comm, server, r.onFailure);
  } catch (err) {
    comm?.free();
    if (client && !(err instanceof DistFailure)) client.fail((err as Error).message);
    await client?.close().catch(() => {});
    await server?.close(1000);
    throw err;
  }
}

function session(env: LaunchEnv, options: DistOptions, client: StoreClient, comm: NativeCommunicator, server: StoreServer | undefined, onFailure?: (e: DistFailure) => void): DistSession {
  let closed = false;
  client.onFailure((e) => {
    if (closed) return;
    comm.abort(e.message); // collectives in flight end with the reason
    onFailure?.(e);
  });
  return {
    rank: env.rank,
    worldSize: env.worldSize,
    localRank: env.localRank,
    localWorldSize: env.localWorldSize,
    nodeRank: env.nodeRank,
    isMain: env.rank === 0,
    options,
    communicator: comm,
    barrier: (name) => client.barrier(name),
    gather: (name, value) => client.gather(name, value),
    get failure() {
      return client.failedWith;
    },
    onFailure: (cb) => client.onFailure(cb),
    fail: (reason) => {
      client.fail(reason);
      comm.abort(`rank ${env.rank} failed: ${reason}`);
    },
    close: async () => {
      if (closed) return;
      if (!client.failedWith) await client.barrier('the end').catch(() => {});
      closed = true;
      comm.free();
      await client.close().catch(() => {});
      await server?.close();
    },
  };
}
