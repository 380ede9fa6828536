// The rendezvous store's server (storeProtocol.ts): hosted by node 0's launcher, or by rank 0 when
// a foreign launcher (torchrun, srun, a Kubernetes operator) started the ranks. It checks that
// every rank runs the same code with the same settings, hands out rank 0's communicator id, runs
// the barriers and gathers, and tells every rank when one fails, disconnects or stops pinging.
import { createServer, type Server, type Socket } from 'node:net';
import { describeRank, readLines, send, type ClientMessage, type RankInfo } from './storeProtocol.js';

export interface StoreServerOptions {
  host: string;
  port: number;           // 0: any free port
  worldSize: number;
  /** A rank silent for this long is declared hung (it pings every second). */
  heartbeatMs: number;
}

interface Member {
  socket: Socket;
  info: RankInfo;
  code: string;
  settings: Record<string, string>;
  commId?: string;
  lastSeen: number;
  done: boolean;
}

interface Meeting {
  kind: 'barrier' | 'gather';
  names: Map<number, string>;
  values: Map<number, unknown>;
}

function settingsDiff(a: Record<string, string>, b: Record<string, string>): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.filter((k) => a[k] !== b[k]).map((k) => `${k} (rank 0: ${a[k] ?? 'unset'}, here: ${b[k] ?? 'unset'})`);
}

export class StoreServer {
  private readonly members = new Map<number, Member>();
  private readonly meetings = new Map<number, Meeting>();
  private readonly sockets = new Set<Socket>();
  private failure: string | null = null;
  private ready = false;
  private readonly timer: NodeJS.Timeout;

  private constructor(private readonly server: Server, private readonly o: StoreServerOptions) {
    this.timer = setInterval(() => this.checkHeartbeats(), Math.min(1000, Math.max(50, o.heartbeatMs / 4)));
    this.timer.unref();
  }

  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : this.o.port;
  }

  static start(o: StoreServerOptions): Promise<StoreServer> {
    return new Promise((resolve, reject) => {
      const server = createServer();
      const s = new StoreServer(server, o);
      server.on('connection', (sock) => s.accept(sock));
      server.once('error', (err: NodeJS.ErrnoException) => {
        clearInterval(s.timer);
        reject(new Error(
          err.code === 'EADDRINUSE'
            ? `the rendezvous port ${o.port} on ${o.host} is in use (another run? pick another --master-port / MASTER_PORT)`
            : `cannot host the rendezvous on ${o.host}:${o.port}: ${err.message}`,
        ));
      });
      server.listen(o.port, o.host, () => resolve(s));
    });
  }

  /** The launcher saw a rank's process end abnormally. */
  rankExited(rank: number, pid: number | undefined, how: string): void {
    const m = this.members.get(rank);
    if (m?.done) return;
    // A rank that registered is named with its pid and host; one that died before, with its pid.
    const who = m?.info ? describeRank(m.info, rank) : `rank ${rank}${pid === undefined ? '' : ` (pid ${pid})`}`;
    this.fail(`${who} ${how}`);
  }

  get failed(): string | null {
    return this.failure;
  }

  /** Stops listening; waits (at most `graceMs`) for the ranks to disconnect. */
  async close(graceMs = 5000): Promise<void> {
    clearInterval(this.timer);
    const until = Date.now() + graceMs;
    while (this.sockets.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private accept(sock: Socket): void {
    this.sockets.add(sock);
    sock.setNoDelay(true);
    let rank: number | null = null;
    readLines(sock, (raw) => {
      const m = raw as ClientMessage;
      if (this.failure) {
        send(sock, { t: 'failed', reason: this.failure });
        return;
      }
      if (m.t === 'join') rank = this.join(sock, m);
      else if (rank === null) sock.destroy();
      else this.message(rank, m);
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      this.sockets.delete(sock);
      if (rank === null) return;
      const me = this.members.get(rank);
      if (me && me.socket === sock && !me.done) {
        this.fail(`${describeRank(me.info, rank)} disconnected from the rendezvous: its process exited or was killed`);
      }
    });
  }

  private join(sock: Socket, m: Extract<ClientMessage, { t: 'join' }>): number | null {
    const r = m.info.rank;
    if (m.worldSize !== this.o.worldSize) {
      this.refuse(`rank ${r} (pid ${m.info.pid} on ${m.info.host}) was started for a world of ${m.worldSize} ranks, but this run has ${this.o.worldSize}`);
      return null;
    }
    if (!Number.isInteger(r) || r < 0 || r >= this.o.worldSize) {
      this.refuse(`a process (pid ${m.info.pid} on ${m.info.host}) claims rank ${r}, which is not in [0, ${this.o.worldSize})`);
      return null;
    }
    const had = this.members.get(r);
    if (had || this.ready) {
      this.refuse(`two processes claim rank ${r}: pid ${had?.info.pid ?? '?'} on ${had?.info.host ?? '?'} and pid ${m.info.pid} on ${m.info.host} (check RANK / --node-rank)`);
      return null;
    }
    this.members.set(r, { socket: sock, info: m.info, code: m.code, settings: m.settings, commId: m.commId, lastSeen: Date.now(), done: false });
    if (this.members.size === this.o.worldSize) this.start();
    return r;
  }

  private start(): void {
    const zero = this.members.get(0)!;
    for (const [r, m] of [...this.members].sort((a, b) => a[0] - b[0])) {
      if (m.code !== zero.code) {
        this.refuse(`${describeRank(m.info, r)} runs different sppo-native code than rank 0 (code version ${m.code} vs ${zero.code}): every rank must run the same install and build`);
        return;
      }
      const diff = settingsDiff(zero.settings, m.settings);
      if (diff.length) {
        this.refuse(`${describeRank(m.info, r)} was started with other settings than rank 0: ${diff.join('; ')}`);
        return;
      }
    }
    if (!zero.commId) {
      this.refuse('rank 0 did not bring a communicator id');
      return;
    }
    this.ready = true;
    const ranks = [...this.members.values()].map((m) => m.info).sort((a, b) => a.rank - b.rank);
    for (const m of this.members.values()) send(m.socket, { t: 'ready', commId: zero.commId, ranks });
  }

  private message(rank: number, m: ClientMessage): void {
    const me = this.members.get(rank);
    if (!me) return;
    me.lastSeen = Date.now();
    if (m.t === 'ping') return;
    if (m.t === 'bye') {
      me.done = true;
      return;
    }
    if (m.t === 'fail') {
      this.fail(`${describeRank(me.info, rank)} failed: ${m.reason}`);
      return;
    }
    if (m.t !== 'sync') return;
    let meeting = this.meetings.get(m.seq);
    if (!meeting) {
      meeting = { kind: m.kind, names: new Map(), values: new Map() };
      this.meetings.set(m.seq, meeting);
    }
    meeting.names.set(rank, `${m.kind} '${m.name}'`);
    meeting.values.set(rank, m.value);
    const first = meeting.names.get(Math.min(...meeting.names.keys()))!;
    for (const [r, n] of meeting.names) {
      if (n !== first) {
        const [a] = [...meeting.names].find(([, x]) => x === first)!;
        this.fail(`ranks disagree at meeting #${m.seq}: rank ${a} is at ${first}, rank ${r} at ${n} (every rank must run the same stages in the same order)`);
        return;
      }
    }
    if (meeting.names.size < this.o.worldSize) return;
    this.meetings.delete(m.seq);
    const values = meeting.kind === 'gather' ? [...Array(this.o.worldSize).keys()].map((r) => meeting.values.get(r)) : undefined;
    for (const x of this.members.values()) send(x.socket, { t: 'synced', seq: m.seq, ...(values ? { values } : {}) });
  }

  private checkHeartbeats(): void {
    if (this.failure || !this.ready) return;
    const now = Date.now();
    for (const [r, m] of this.members) {
      if (!m.done && now - m.lastSeen > this.o.heartbeatMs) {
        this.fail(`${describeRank(m.info, r)} stopped responding: no message for ${(this.o.heartbeatMs / 1000).toFixed(1)} s (it is stopped, or hangs; --dist-timeout sets the limit)`);
        return;
      }
    }
  }

  private refuse(reason: string): void {
    if (this.failure) return;
    this.failure = reason;
    for (const s of this.sockets) send(s, { t: 'refused', reason });
  }

  private fail(reason: string): void {
    if (this.failure) return;
    this.failure = reason;
    for (const s of this.sockets) send(s, { t: 'failed', reason });
  }
}
