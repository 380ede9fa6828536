// A rank's connection to the rendezvous store (storeProtocol.ts): join, then barriers and
// gathers; a ping every second; a failure anywhere (the server's word, or the server gone)
// rejects what is pending and calls onFailure once.
import { connect, type Socket } from 'node:net';
import { readLines, send, type ClientMessage, type RankInfo, type ServerMessage } from './storeProtocol.js';

export class DistFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DistFailure';
  }
}

interface Pending {
  resolve: (values: unknown[] | undefined) => void;
  reject: (err: Error) => void;
}

export class StoreClient {
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private joining: { resolve: (m: { commId: string; ranks: RankInfo[] }) => void; reject: (e: Error) => void } | null = null;
  private failure: DistFailure | null = null;
  private readonly listeners: ((e: DistFailure) => void)[] = [];
  private closing = false;
  private readonly ping: NodeJS.Timeout;

  private constructor(private readonly socket: Socket, private readonly where: string) {
    socket.setNoDelay(true);
    readLines(socket, (m) => this.message(m as ServerMessage));
    socket.on('error', () => {});
    socket.on('close', () => {
      if (!this.closing) this.failed(`lost the rendezvous server at ${where} (it runs in rank 0 or in node 0's launcher: that process exited or the network failed)`);
    });
    this.ping = setInterval(() => this.send({ t: 'ping' }), 1000);
    this.ping.unref();
  }

  /** Connects, retrying while the server is not up yet, for at most `timeoutMs`. */
  static async connect(host: string, port: number, timeoutMs: number): Promise<StoreClient> {
    const where = `${host}:${port}`;
    const until = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect({ host, port });
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        return new StoreClient(socket, where);
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > until) {
        throw new DistFailure(`could not reach the rendezvous at ${where} within ${(timeoutMs / 1000).toFixed(0)} s (${last}); is rank 0 (or node 0's launcher) running, and are MASTER_ADDR / MASTER_PORT (--master-addr / --master-port) the same on every node?`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  get failedWith(): DistFailure | null {
    return this.failure;
  }

  onFailure(cb: (e: DistFailure) => void): void {
    if (this.failure) cb(this.failure);
    else this.listeners.push(cb);
  }

  join(m: Omit<Extract<ClientMessage, { t: 'join' }>, 't'>): Promise<{ commId: string; ranks: RankInfo[] }> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.joining = { resolve, reject };
      this.send({ t: 'join', ...m });
    });
  }

  barrier(name: string): Promise<void> {
    return this.sync('barrier', name).then(() => undefined);
  }

  /** Every rank's `value`, in rank order. */
  gather<T>(name: string, value: T): Promise<T[]> {
    return this.sync('gather', name, value) as Promise<T[]>;
  }

  /** Tells every rank that this one failed (best effort). */
  fail(reason: string): void {
    this.send({ t: 'fail', reason });
  }

  /** A clean goodbye: the disconnect that follows is not a failure. */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.ping);
    if (this.socket.destroyed) return;
    this.send({ t: 'bye' });
    await new Promise<void>((r) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        r();
      }, 2000);
      this.socket.once('close', () => {
        clearTimeout(timer);
        r();
      });
      this.socket.end();
    });
  }

  private sync(kind: 'barrier' | 'gather', name: string, value?: unknown): Promise<unknown[] | undefined> {
    if (this.failure) return Promise.reject(this.failure);
    const seq = this.seq++;
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      this.send({ t: 'sync', seq, kind, name, ...(value !== undefined ? { value } : {}) });
    });
  }

  private send(m: ClientMessage): void {
    send(this.socket, m);
  }

  private message(m: ServerMessage): void {
    if (m.t === 'ready') {
      this.joining?.resolve({ commId: m.commId, ranks: m.ranks });
      this.joining = null;
    } else if (m.t === 'refused') {
      this.failed(`the rendezvous refused this run: ${m.reason}`);
    } else if (m.t === 'failed') {
      this.failed(m.reason);
    } else if (m.t === 'synced') {
      const p = this.pending.get(m.seq);
      this.pending.delete(m.seq);
      p?.resolve(m.values);
    }
  }

  private failed(reason: string): void {
    if (this.failure) return;
    this.failure = new DistFailure(reason);
    clearInterval(this.ping);
    this.joining?.reject(this.failure);
    this.joining = null;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
    for (const l of this.listeners.splice(0)) l(this.failure);
    this.socket.destroy();
  }
}
