// The rendezvous store's wire format (CONTRACT between storeServer.ts and storeClient.ts): one JSON
// object per line over TCP. A rank joins with who it is, its code version and its settings; the
// server answers `ready` (with rank 0's communicator id) once every rank has joined and all agree,
// or `refused` naming what differs. Afterwards ranks meet at named barriers and gathers (the n-th
// of each rank is the same meeting, and its names must agree), send pings, and a failure (a rank
// that failed, disconnected, stopped pinging, or that the launcher saw die) is sent to everyone.
import type { Socket } from 'node:net';

export interface RankInfo {
  rank: number;
  host: string;
  pid: number;
  localRank: number;
  nodeRank: number;
}

export type ClientMessage =
  | { t: 'join'; worldSize: number; info: RankInfo; code: string; settings: Record<string, string>; commId?: string }
  | { t: 'sync'; seq: number; kind: 'barrier' | 'gather'; name: string; value?: unknown }
  | { t: 'ping' }
  | { t: 'fail'; reason: string }
  | { t: 'bye' };

export type ServerMessage =
  | { t: 'ready'; commId: string; ranks: RankInfo[] }
  | { t: 'refused'; reason: string }
  | { t: 'synced'; seq: number; values?: unknown[] }
  | { t: 'failed'; reason: string };

export function describeRank(i: RankInfo | undefined, rank: number): string {
  return i ? `rank ${rank} (pid ${i.pid} on ${i.host})` : `rank ${rank}`;
}

/** Calls `onMessage` with each JSON line received on `socket`; bad lines end the connection. */
export function readLines(socket: Socket, onMessage: (m: unknown) => void): void {
  let buf = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim() === '') continue;
      let m: unknown;
      try {
        m = JSON.parse(line);
      } catch {
        socket.destroy(new Error('the rendezvous peer sent a line that is not JSON'));
        return;
      }
      onMessage(m);
    }
  });
}

export function send(socket: Socket, m: ClientMessage | ServerMessage): void {
  if (!socket.destroyed && socket.writable) socket.write(`${JSON.stringify(m)}\n`);
}
