// The pieces of a data-parallel launch without processes: the launch variables of torchrun,
// Kubernetes and SLURM, the launcher's flag stripping, the split of shards and batches, the judge
// placement, and the rendezvous store refusing ranks that differ in code or settings or that
// claim the same rank, and telling every rank when one disconnects.
import { describe, expect, it } from 'vitest';
import { readLaunchEnv } from '../src/dist/launchEnv.js';
import { firstHost } from '../src/dist/hostlist.js';
import { withoutLauncherFlags } from '../src/dist/launcher.js';
import { alone, contiguousPart, ownsShard } from '../src/dist/session.js';
import { judgeOwner, judgePlacement } from '../src/pipeline/judgePlacement.js';
import { StoreServer } from '../src/dist/storeServer.js';
import { StoreClient } from '../src/dist/storeClient.js';

describe('launch variables', () => {
  it('reads torchrun / Kubernetes variables, SLURM inside srun, and nothing as one process', () => {
    expect(readLaunchEnv({ RANK: '3', WORLD_SIZE: '8', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: 'n0', MASTER_PORT: '1234' })).toMatchObject({
      source: 'env', rank: 3, worldSize: 8, localRank: 1, localWorldSize: 2, nodeRank: 1, masterAddr: 'n0', masterPort: 1234,
    });
    // One process per pod (a PyTorchJob without nprocPerNode): no LOCAL_* variables.
    expect(readLaunchEnv({ RANK: '2', WORLD_SIZE: '4', MASTER_ADDR: 'job-master-0' })).toMatchObject({ rank: 2, localRank: 0, localWorldSize: 1, nodeRank: 2, masterPort: 29500 });
    const slurm = { SLURM_PROCID: '5', SLURM_NTASKS: '8', SLURM_LOCALID: '1', SLURM_NODEID: '2', SLURM_STEP_ID: '0', SLURM_STEP_TASKS_PER_NODE: '2(x4)', SLURM_STEP_NODELIST: 'gpu[07-10]' };
    expect(readLaunchEnv(slurm)).toMatchObject({ source: 'slurm', rank: 5, worldSize: 8, localRank: 1, localWorldSize: 2, nodeRank: 2, masterAddr: 'gpu07', masterPort: 29500 });
    // The batch script itself (no step) is not a rank.
    expect(readLaunchEnv({ ...slurm, SLURM_STEP_ID: undefined }).source).toBe('single');
    expect(readLaunchEnv({}).worldSize).toBe(1);
  });

  it('names the variable that is wrong', () => {
    expect(() => readLaunchEnv({ RANK: '4', WORLD_SIZE: '4', MASTER_ADDR: 'x' })).toThrow(/RANK must be an integer in \[0, 3\] \(got "4"\)/);
    expect(() => readLaunchEnv({ RANK: '0', WORLD_SIZE: 'two' })).toThrow(/WORLD_SIZE must be an integer/);
    expect(() => readLaunchEnv({ RANK: '1', WORLD_SIZE: '2' })).toThrow(/MASTER_ADDR must name the rendezvous host/);
    expect(() => readLaunchEnv({ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'a', MASTER_PORT: '70000' })).toThrow(/MASTER_PORT must be an integer in \[1, 65535\]/);
  });

  it('takes the first host of a SLURM node list', () => {
    expect(firstHost('node[01-04,07],login1')).toBe('node01');
    expect(firstHost('a1,b[2-3]')).toBe('a1');
    expect(firstHost('rack2-n[3,5]-ib')).toBe('rack2-n3-ib');
  });

  it('gives the ranks the command line without the launcher flags', () => {
    expect(withoutLauncherFlags(['train', '--nproc-per-node', '2', '--lr=1e-6', '--master-port=29500', '--nnodes', '1', '--output', 'x'])).toEqual(['train', '--lr=1e-6', '--output', 'x']);
  });
});

describe('work split', () => {
  it('splits a batch into contiguous parts and shards round robin, covering everything once', () => {
    for (const world of [1, 2, 3, 5]) {
      for (const n of [0, 1, 7, 64]) {
        const seen: number[] = [];
        for (let r = 0; r < world; r++) {
          const [lo, hi] = contiguousPart(n, r, world);
          for (let i = lo; i < hi; i++) seen.push(i);
        }
        expect(seen).toEqual([...Array(n).keys()]);
        for (let i = 0; i < n; i++) expect([...Array(world).keys()].filter((r) => ownsShard(i, r, world))).toHaveLength(1);
      }
    }
  });

  it('places command judges once per node, LLM judges on rank 0 and in-process judges everywhere', () => {
    expect(judgePlacement('command:python j.py', 'auto')).toBe('node');
    expect(judgePlacement('llm:http://h/v1?model=m', 'auto')).toBe('rank0');
    expect(judgePlacement('builtin:demo', 'auto')).toBe('all');
    expect(judgePlacement('builtin:demo', 'rank0')).toBe('rank0');
    // Two nodes of two ranks: local rank 0 of each node judges every other shard.
    const at = (rank: number) => ({ ...alone({ timeoutS: 1, zero1: false, judgeOn: 'auto' }), rank, worldSize: 4, localRank: rank % 2, localWorldSize: 2, nodeRank: Math.floor(rank / 2), isMain: rank === 0 });
    const owners = (shard: number) => [0, 1, 2, 3].filter((r) => judgeOwner('command:j', at(r))(shard));
    expect([0, 1, 2, 3].map(owners)).toEqual([[0], [2], [0], [2]]);
  });
});

describe('the rendezvous store', () => {
  const join = (c: StoreClient, rank: number, over: { code?: string; settings?: Record<string, string>; worldSize?: number } = {}) =>
    c.join({ worldSize: over.worldSize ?? 2, info: { rank, host: 'h', pid: 100 + rank, localRank: rank, nodeRank: 0 }, code: over.code ?? 'v1', settings: over.settings ?? { 'train.lr': '5e-7' }, ...(rank === 0 ? { commId: 'id' } : {}) });

  async function pair(a: Parameters<typeof join>[2], b: Parameters<typeof join>[2]) {
    const server = await StoreServer.start({ host: '127.0.0.1', port: 0, worldSize: 2, heartbeatMs: 10_000 });
    const c0 = await StoreClient.connect('127.0.0.1', server.port, 5000);
    const c1 = await StoreClient.connect('127.0.0.1', server.port, 5000);
    const joined = await Promise.allSettled([join(c0, 0, a), join(c1, 1, b)]);
    return { server, c0, c1, joined };
  }

  it('hands out rank 0\'s id when the ranks agree, and runs barriers and gathers in rank order', async () => {
    const { server, c0, c1, joined } = await pair({}, {});
    expect(joined.map((j) => j.status)).toEqual(['fulfilled', 'fulfilled']);
    expect((joined[1] as PromiseFulfilledResult<{ commId: string }>).value.commId).toBe('id');
    const [g0, g1] = await Promise.all([c0.gather('x', { v: 0 }), c1.gather('x', { v: 1 })]);
    expect(g0).toEqual([{ v: 0 }, { v: 1 }]);
    expect(g1).toEqual(g0);
    await Promise.all([c0.barrier('b'), c1.barrier('b')]);
    // Ranks at different meetings are a failure that names both.
    const wrong = await Promise.allSettled([c0.barrier('rollout'), c1.barrier('judge')]);
    expect((wrong[0] as PromiseRejectedResult).reason.message).toMatch(/ranks disagree at meeting #2: rank 0 is at barrier 'rollout', rank 1 at barrier 'judge'/);
    await Promise.all([c0.close(), c1.close()]);
    await server.close();
  });

  it('refuses ranks that run other code, other settings or the same rank, naming them', async () => {
    const code = await pair({}, { code: 'v2' });
    for (const j of code.joined) expect((j as PromiseRejectedResult).reason.message).toMatch(/rank 1 \(pid 101 on h\) runs different sppo-native code than rank 0 \(code version v2 vs v1\)/);
    await code.server.close(100);
    const settings = await pair({}, { settings: { 'train.lr': '1e-6' } });
    for (const j of settings.joined) expect((j as PromiseRejectedResult).reason.message).toMatch(/other settings than rank 0: train\.lr \(rank 0: 5e-7, here: 1e-6\)/);
    await settings.server.close(100);
    const world = await pair({}, { worldSize: 3 });
    expect((world.joined[1] as PromiseRejectedResult).reason.message).toMatch(/started for a world of 3 ranks, but this run has 2/);
    await world.server.close(100);
    const server = await StoreServer.start({ host: '127.0.0.1', port: 0, worldSize: 2, heartbeatMs: 10_000 });
    const a = await StoreClient.connect('127.0.0.1', server.port, 5000);
    const b = await StoreClient.connect('127.0.0.1', server.port, 5000);
    const twice = await Promise.allSettled([join(a, 1), join(b, 1)]);
    expect((twice[1] as PromiseRejectedResult).reason.message).toMatch(/two processes claim rank 1/);
    await server.close(100);
  });

  it('tells every rank when one disconnects without saying goodbye, and when the server goes', async () => {
    const { server, c0, c1 } = await pair({}, {});
    const told = new Promise<string>((resolve) => c0.onFailure((e) => resolve(e.message)));
    const pending = c0.barrier('waiting');
    (c1 as unknown as { socket: { destroy(): void } }).socket.destroy(); // as a killed process's socket
    expect(await told).toMatch(/rank 1 \(pid 101 on h\) disconnected from the rendezvous/);
    await expect(pending).rejects.toThrow(/rank 1/);
    await server.close(100);
    const again = await pair({}, {});
    const lost = new Promise<string>((resolve) => again.c1.onFailure((e) => resolve(e.message)));
    await again.server.close(0);
    expect(await lost).toMatch(/lost the rendezvous server|disconnected/);
  });
});
