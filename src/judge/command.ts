// `command:<cmd>`: a long-lived judge subprocess speaking the JSONL protocol of
// docs/judge-protocol.md. Every failure (cannot start, exits, crashes, malformed or wrong-sized
// answers, silence past the timeout) becomes an Error naming the command and, where there is one,
// the offending output line; the process (its whole process group) is always ended.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Judge, JudgeInput, Judgment } from './types.js';
import { validateBatch } from './input.js';
import { matrixFromScores, validateMatrix, validateScores } from './matrix.js';

export const PROTOCOL = 'sppo-judge';
export const PROTOCOL_VERSION = 1;

export interface CommandJudgeOptions {
  /** Fail when a request is outstanding and the judge prints nothing for this long (default 10 min). */
  timeoutMs?: number;
  /** Time allowed for the handshake line (model loading, default 10 min). */
  startupTimeoutMs?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Receives the judge's stderr lines (default: kept only for error messages). */
  onStderr?: (line: string) => void;
}

interface Pending {
  k: number;
  resolve: (j: Judgment) => void;
  reject: (e: Error) => void;
}

const STDERR_TAIL = 2000;

/**
 * The judge's shell (`sh -c WATCHDOG <command>`): first a watchdog, in the judge's process group,
 * that reads fd 3, the one end of a socket pair whose other end only this Node process holds. The
 * kernel closes that end when this process dies, whatever kills it (kill -9 too), and the
 * read then ends: the watchdog sends SIGTERM to the whole group, and SIGKILL 2 s later. Then
 * the shell closes fd 3 (the judge never sees it) and becomes the judge command. (Linux's
 * PR_SET_PDEATHSIG would do the same but cannot be reached from Node.)
 */
const WATCHDOG = [
  "( trap '' TERM INT HUP; while read -r line <&3; do :; done; kill -TERM 0; sleep 2; kill -KILL 0 ) </dev/null >/dev/null 2>&1 &",
  'exec 3<&-',
  'exec /bin/sh -c "$0"',
].join('\n');

/** Judges whose process may still run: ended by closeAllCommandJudges on SIGINT/SIGTERM. */
const live = new Set<CommandJudge>();

/**
 * Ends every running command judge now (SIGTERM to its process group, SIGKILL after `graceMs`).
 * For signal handlers: a judge leads its own process group, so a terminal's Ctrl-C never reaches
 * it, and 'exit' handlers do not run when a signal ends the process.
 */
export async function closeAllCommandJudges(graceMs = 1000): Promise<void> {
  await Promise.all([...live].map((j) => j.kill(graceMs)));
}
const clip = (s: string, n = 200) => (s.length > n ? `${s.slice(0, n)}…` : s);

export class CommandJudge implements Judge {
  readonly name: string;
  readonly pid: number | undefined;
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private failure: Error | null = null;
  private closing = false;
  private exited = false;
  private readonly exitedPromise: Promise<void>;
  private handshake = false;
  private readonly ready: Promise<void>;
  private nextId = 0;
  private lineNo = 0;
  private stdoutBuf = '';
  private stderrBuf = '';
  private stderrTail = '';
  private timer: NodeJS.Timeout | null = null;
  private readonly timeoutMs: number;
  private readonly killOnExit = () => this.killGroup('SIGKILL');
  private settleReady!: { resolve: () => void; reject: (e: Error) => void };

  /** Starts the judge and waits for its handshake line. */
  static async start(command: string, opts: CommandJudgeOptions = {}): Promise<CommandJudge> {
    const j = new CommandJudge(command, opts);
    try {
      await j.ready;
    } catch (e) {
      await j.close();
      throw e;
    }
    return j;
  }

  private constructor(
    command: string,
    private readonly opts: CommandJudgeOptions,
  ) {
    this.name = `command:${command}`;
    this.timeoutMs = opts.timeoutMs ?? 600_000;
    this.ready = new Promise<void>((resolve, reject) => (this.settleReady = { resolve, reject }));
    this.ready.catch(() => {}); // observed in start(); avoid an unhandled rejection meanwhile
    // detached: the judge leads its own process group, so a shell and everything it started can be
    // ended together. On POSIX a watchdog in that group ends it when this process dies in any way
    // (kill -9 included), see WATCHDOG.
    const posix = process.platform !== 'win32';
    this.child = posix
      ? spawn('/bin/sh', ['-c', WATCHDOG, command], { detached: true, stdio: ['pipe', 'pipe', 'pipe', 'pipe'], cwd: opts.cwd, env: opts.env ?? process.env })
      : spawn(command, { shell: true, stdio: ['pipe', 'pipe', 'pipe'], cwd: opts.cwd, env: opts.env ?? process.env });
    const lifeline = this.child.stdio[3] as Socket | null | undefined;
    if (lifeline) {
      lifeline.on('error', () => {}); // the watchdog's end goes when the group is killed
      lifeline.unref(); // never keeps this process alive
    }
    this.pid = this.child.pid;
    live.add(this);
    process.on('exit', this.killOnExit);
    this.exitedPromise = new Promise<void>((resolve) => {
      // 'exit', not 'close': a descendant that left the group may hold the pipes open forever.
      this.child.once('exit', () => resolve());
      this.child.once('error', () => resolve());
    });
    this.child.on('error', (e) => {
      this.exited = true;
      this.fail(`could not be started: ${e.message}`);
    });
    // Report an exit once its last output is read ('close'), or shortly after 'exit' when something
    // it started still holds the pipes.
    const reportExit = (code: number | null, signal: NodeJS.Signals | null) => {
      if (this.closing || this.failure) return;
      const how = signal ? `was killed by signal ${signal}` : `exited with code ${code}`;
      const when = this.handshake ? (this.pending.size ? ` with ${this.pending.size} request(s) unanswered` : '') : ' before its handshake line';
      this.fail(`${how}${when}`);
    };
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      setTimeout(() => reportExit(code, signal), 200).unref();
    });
    this.child.on('close', (code, signal) => reportExit(code, signal));
    this.child.stdin!.on('error', () => {}); // EPIPE after a crash: reported through 'exit'
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (d: string) => this.onStdout(d));
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (d: string) => this.onStderr(d));
    this.armTimer(opts.startupTimeoutMs ?? 600_000, 'for its handshake line');
  }

  async judge(batch: JudgeInput[]): Promise<Judgment[]> {
    validateBatch(batch, this.name);
    if (this.failure) throw this.failure;
    if (this.closing) throw new Error(`judge '${this.name}' is closed`);
    await this.ready;
    if (batch.length === 0) return [];
    const answers = batch.map(
      (input) =>
        new Promise<Judgment>((resolve, reject) => {
          const id = this.nextId++;
          this.pending.set(id, { k: input.responses.length, resolve, reject });
          const line = JSON.stringify({ id, prompt: input.prompt, responses: input.responses });
          this.child.stdin!.write(`${line}\n`);
        }),
    );
    this.armTimer(this.timeoutMs, 'for an answer');
    const all = Promise.all(answers);
    // One failure rejects every pending request; observe them all so none is left unhandled.
    answers.forEach((a) => a.catch(() => {}));
    return all;
  }

  /** Ends stdin (the judge should exit), then SIGTERM, then SIGKILL to its process group. */
  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      this.clearTimer();
      this.rejectAll(new Error(`judge '${this.name}' was closed with requests unanswered`));
      this.child.stdin!.end();
      if (!(await this.waitExit(2000))) {
        this.killGroup('SIGTERM');
        if (!(await this.waitExit(2000))) this.killGroup('SIGKILL');
      }
      // Children the judge left behind in its group go too.
      this.killGroup('SIGKILL');
      process.off('exit', this.killOnExit);
    }
    await this.exitedPromise;
    live.delete(this);
  }

  /** Ends the judge at once: SIGTERM to its process group, SIGKILL after `graceMs`. */
  async kill(graceMs = 1000): Promise<void> {
    this.closing = true;
    this.clearTimer();
    this.rejectAll(new Error(`judge '${this.name}' was stopped`));
    this.killGroup('SIGTERM');
    if (!(await this.waitExit(graceMs))) this.killGroup('SIGKILL');
    this.killGroup('SIGKILL'); // anything it left in its group
    process.off('exit', this.killOnExit);
    live.delete(this);
  }

  private onStdout(data: string): void {
    if (this.pending.size) this.armTimer(this.timeoutMs, 'for an answer');
    this.stdoutBuf += data;
    let nl: number;
    while ((nl = this.stdoutBuf.indexOf('\n')) >= 0 && !this.failure) {
      const line = this.stdoutBuf.slice(0, nl).replace(/\r$/, '');
      this.stdoutBuf = this.stdoutBuf.slice(nl + 1);
      this.lineNo++;
      if (line.trim() === '') continue;
      this.onLine(line);
    }
    if (this.pending.size === 0 && this.handshake) this.clearTimer();
  }

  private onLine(line: string): void {
    const where = `line ${this.lineNo} of its output`;
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      msg = undefined;
    }
    const isObject = typeof msg === 'object' && msg !== null && !Array.isArray(msg);
    if (!this.handshake && !isObject) {
      // The first line must be the handshake (docs/judge-protocol.md, section 1).
      this.fail(
        `${where} should be the handshake {"protocol":"${PROTOCOL}","version":${PROTOCOL_VERSION}} (docs/judge-protocol.md; ` +
          `judges print only protocol lines on stdout, logs go to stderr), got: ${clip(line)}`,
      );
      return;
    }
    if (msg === undefined) {
      this.fail(`${where} is not valid JSON (judges print only protocol lines on stdout; logs go to stderr): ${clip(line)}`);
      return;
    }
    if (!isObject) {
      this.fail(`${where} is not a JSON object: ${clip(line)}`);
      return;
    }
    const m = msg as Record<string, unknown>;
    if (!this.handshake) {
      if (m.protocol !== PROTOCOL || m.version !== PROTOCOL_VERSION) {
        this.fail(`${where} should be the handshake {"protocol":"${PROTOCOL}","version":${PROTOCOL_VERSION}}, got: ${clip(line)}`);
        return;
      }
      this.handshake = true;
      this.clearTimer();
      this.settleReady.resolve();
      return;
    }
    const id = m.id;
    const p = typeof id === 'number' ? this.pending.get(id) : undefined;
    if (!p) {
      this.fail(`${where} answers id ${JSON.stringify(id)}, which is not an outstanding request: ${clip(line)}`);
      return;
    }
    if (typeof m.error === 'string') {
      // The judge refused this one request; it stays usable for others.
      this.pending.delete(id as number);
      p.reject(new Error(`judge '${this.name}' reported an error for request ${id} (${where}): ${m.error}`));
      return;
    }
    try {
      const what = `judge '${this.name}', ${where} (request ${id})`;
      let judgment: Judgment;
      if (m.probability !== undefined) {
        validateMatrix(m.probability, what, p.k);
        let scores: number[] | null = null;
        if (m.scores !== undefined && m.scores !== null) {
          validateScores(m.scores, what, p.k);
          scores = m.scores;
        }
        judgment = { probability: m.probability, scores };
      } else if (m.scores !== undefined) {
        validateScores(m.scores, what, p.k);
        judgment = { probability: matrixFromScores(m.scores), scores: m.scores };
      } else {
        throw new Error(`${what}: the answer has neither "scores" nor "probability": ${clip(line)}`);
      }
      this.pending.delete(id as number);
      p.resolve(judgment);
    } catch (e) {
      this.fail((e as Error).message, false);
    }
  }

  private onStderr(data: string): void {
    this.stderrTail = (this.stderrTail + data).slice(-STDERR_TAIL);
    if (!this.opts.onStderr) return;
    this.stderrBuf += data;
    let nl: number;
    while ((nl = this.stderrBuf.indexOf('\n')) >= 0) {
      this.opts.onStderr(this.stderrBuf.slice(0, nl));
      this.stderrBuf = this.stderrBuf.slice(nl + 1);
    }
  }

  /** Marks the judge failed, rejects everything outstanding and ends the process. */
  private fail(reason: string, prefix = true): void {
    if (this.failure) return;
    const tail = this.stderrTail.trim();
    const err = new Error(
      (prefix ? `judge '${this.name}' ${reason}` : reason) + (tail ? `\n--- judge stderr (last lines) ---\n${tail.split('\n').slice(-10).join('\n')}` : ''),
    );
    this.failure = err;
    this.clearTimer();
    this.settleReady.reject(err);
    this.rejectAll(err);
    this.killGroup('SIGKILL');
    process.off('exit', this.killOnExit);
    live.delete(this);
  }

  private rejectAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private armTimer(ms: number, what: string): void {
    this.clearTimer();
    this.timer = setTimeout(() => this.fail(`timed out: printed nothing for ${ms / 1000} s while we waited ${what}; it was stopped`), ms);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private killGroup(signal: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      if (process.platform === 'win32') this.child.kill(signal);
      else process.kill(-pid, signal);
    } catch {
      // Already gone.
    }
  }

  private async waitExit(ms: number): Promise<boolean> {
    if (this.exited) return true;
    let t: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => (t = setTimeout(() => r(false), ms)));
    const done = this.exitedPromise.then(() => true);
    const ok = await Promise.race([done, timeout]);
    clearTimeout(t);
    return ok;
  }
}
