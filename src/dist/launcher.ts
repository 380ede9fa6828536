// `sppo-native train --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P]`:
// the launcher of one node (as torchrun's agent). It hosts the rendezvous store on node 0, starts
// N ranks of this same command (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK,
// MASTER_ADDR, MASTER_PORT set; the launcher flags removed), forwards signals to them, and when
// one ends abnormally tells the others through the store (naming it and how it ended), gives them
// time to stop by themselves, then stops what is left. Its exit code is the first failure's.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { StoreServer } from './storeServer.js';

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  /** 0 on a single node: any free port. */
  masterPort: number;
  timeoutS: number;
  /** The command line of one rank: node, its script, its arguments. */
  command: string[];
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

export const LAUNCHER_FLAGS = ['nproc-per-node', 'nnodes', 'node-rank', 'master-addr', 'master-port'];

/** `argv` without the launcher's own flags (`--flag value` and `--flag=value`, also camelCase). */
export function withoutLauncherFlags(argv: string[]): string[] {
  const names = new Set(LAUNCHER_FLAGS.flatMap((f) => [f, f.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())]));
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--([^=]+)(=.*)?$/.exec(a);
    if (m && names.has(m[1]!)) {
      if (m[2] === undefined) i++; // its value
      continue;
    }
    out.push(a);
  }
  return out;
}

function check(o: LaunchOptions): void {
  const int = (v: number, name: string, min: number): void => {
    if (!Number.isInteger(v) || v < min) throw new Error(`--${name} must be an integer >= ${min} (got ${v})`);
  };
  int(o.nprocPerNode, 'nproc-per-node', 1);
  int(o.nnodes, 'nnodes', 1);
  int(o.nodeRank, 'node-rank', 0);
  if (o.nodeRank >= o.nnodes) throw new Error(`--node-rank ${o.nodeRank} is not below --nnodes ${o.nnodes}`);
  if (!Number.isInteger(o.masterPort) || o.masterPort < 0 || o.masterPort > 65535) throw new Error(`--master-port must be a port number (got ${o.masterPort})`);
  if (o.nnodes > 1 && (!o.masterAddr || o.masterPort === 0)) {
    throw new Error('with --nnodes > 1, give every node the same --master-addr (node 0\'s address) and --master-port');
  }
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `was killed by ${signal}` : `exited with code ${code}`;
}

export async function launchRanks(o: LaunchOptions): Promise<number> {
  check(o);
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const world = o.nprocPerNode * o.nnodes;
  let server: StoreServer | undefined;
  let port = o.masterPort;
  const addr = o.nnodes > 1 ? o.masterAddr : '127.0.0.1';
  if (o.nodeRank === 0) {
    server = await StoreServer.start({ host: o.nnodes > 1 ? '0.0.0.0' : '127.0.0.1', port, worldSize: world, heartbeatMs: o.timeoutS * 1000 });
    port = server.port;
  }
  log(`sppo-native launcher: node ${o.nodeRank} of ${o.nnodes}, starting ranks ${o.nodeRank * o.nprocPerNode}..${(o.nodeRank + 1) * o.nprocPerNode - 1} of ${world} (rendezvous ${addr}:${port})`);
  const children: { rank: number; child: ChildProcess; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }[] = [];
  for (let local = 0; local < o.nprocPerNode; local++) {
    const rank = o.nodeRank * o.nprocPerNode + local;
    const child = spawn(o.command[0]!, o.command.slice(1), {
      stdio: 'inherit',
      detached: true, // its own process group: a terminal's Ctrl-C reaches it once, through us
      env: {
        ...(o.env ?? process.env),
        RANK: String(rank),
        WORLD_SIZE: String(world),
        LOCAL_RANK: String(local),
        LOCAL_WORLD_SIZE: String(o.nprocPerNode),
        GROUP_RANK: String(o.nodeRank),
        NODE_RANK: String(o.nodeRank),
        MASTER_ADDR: addr,
        MASTER_PORT: String(port),
        SPPO_STORE_HOSTED: '1',
        SPPO_LAUNCHER_PID: String(process.pid),
      },
    });
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: 127, signal: null }));
    });
    children.push({ rank, child, exit });
    log(`sppo-native launcher: rank ${rank} is pid ${child.pid}`);
  }
  let first: { rank: number; how: string; code: number } | null = null;
  let stopping: NodeJS.Signals | null = null;
  const alive = new Set(children.map((c) => c.rank));
  const killAll = (signal: NodeJS.Signals): void => {
    for (const c of children) if (alive.has(c.rank)) try { process.kill(-c.child.pid!, signal); } catch { /* gone */ }
  };
  const forward = (signal: NodeJS.Signals) => (): void => {
    if (stopping) {
      killAll('SIGKILL');
      return;
    }
    stopping = signal;
    killAll(signal);
  };
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  let grace: NodeJS.Timeout | undefined;
  let hard: NodeJS.Timeout | undefined;
  await Promise.all(children.map(async (c) => {
    const { code, signal } = await c.exit;
    alive.delete(c.rank);
    if ((code === 0 && !signal) || first) return;
    const how = describeExit(code, signal);
    first = { rank: c.rank, how, code: signal ? 128 + (signalNumber(signal) ?? 1) : code ?? 1 };
    if (stopping) return;
    log(`sppo-native launcher: rank ${c.rank} (pid ${c.child.pid}) ${how}; the other ranks stop`);
    server?.rankExited(c.rank, c.child.pid, how);
    // They learn it from the store (or their communicator) and stop; what does not is stopped.
    const graceS = Math.min(o.timeoutS, 30) + 5;
    grace = setTimeout(() => {
      if (alive.size) log(`sppo-native launcher: rank(s) ${[...alive].join(', ')} still running after ${graceS} s; stopping them`);
      killAll('SIGTERM');
      hard = setTimeout(() => killAll('SIGKILL'), 5000);
    }, graceS * 1000);
  }));
  clearTimeout(grace);
  clearTimeout(hard);
  process.off('SIGINT', onInt);
  process.off('SIGTERM', onTerm);
  await server?.close(1000);
  const f = first as { rank: number; how: string; code: number } | null;
  if (stopping) return stopping === 'SIGINT' ? 130 : 143;
  if (f) {
    log(`sppo-native launcher: the run stopped because rank ${f.rank} ${f.how}; finished work is kept, rerun the same command to resume`);
    return f.code || 1;
  }
  return 0;
}

function signalNumber(s: NodeJS.Signals): number | undefined {
  return (constants.signals as Record<string, number>)[s];
}
