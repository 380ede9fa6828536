// The server a rollout samples from must serve the current iteration's policy. Either the run
// starts it itself, once per iteration, from a command template ({model}: the policy folder,
// {port}: the port of the base URL) and waits until /v1/models answers; or a server the user
// runs is checked: it must list the policy folder as a model id (vLLM lists the path it was
// given), or, for the base model only, the name given with ?model=<name>.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { OpenAIClient } from './client.js';

export type RolloutEngineSpec = { kind: 'native' } | { kind: 'openai'; baseUrl: string; model: string | null };

export function parseRolloutEngine(spec: string): RolloutEngineSpec {
  if (spec === 'native') return { kind: 'native' };
  if (!spec.startsWith('openai:')) throw new Error(`rollout engine '${spec}' is not understood: expected 'native' or 'openai:<base-url>[?model=<served name>]'`);
  const rest = spec.slice('openai:'.length);
  let u: URL;
  try {
    u = new URL(rest);
  } catch {
    throw new Error(`rollout engine '${spec}': '${rest}' is not a URL (expected e.g. openai:http://localhost:8000/v1)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`rollout engine '${spec}': only http and https URLs are supported`);
  const model = u.searchParams.get('model');
  for (const k of u.searchParams.keys()) if (k !== 'model') throw new Error(`rollout engine '${spec}': unknown option '${k}' (accepted: model)`);
  u.search = '';
  return { kind: 'openai', baseUrl: u.toString().replace(/\/+$/, ''), model };
}

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export function fillCommand(template: string, model: string, port: string): string {
  if (!template.includes('{model}')) throw new Error(`rollout.serverCommand '${template}' must contain {model} (the policy folder it serves)`);
  return template.replaceAll('{model}', quote(model)).replaceAll('{port}', port);
}

const live = new Set<ServedPolicy>();

/** Ends every policy server this process started (Ctrl-C / SIGTERM). */
export async function stopAllPolicyServers(): Promise<void> {
  await Promise.all([...live].map((s) => s.close()));
}

export interface ServedPolicyOptions {
  baseUrl: string;
  /** ?model=: the name the base model is served under. */
  baseModelName: string | null;
  command: string | null;
  startupSeconds: number;
  policyFolder: string;
  baseModel: string;
  /** Where the started server's output goes. */
  logFile: string;
  onLog?: (message: string) => void;
}

export class ServedPolicy {
  private constructor(readonly client: OpenAIClient, public model: string, private child: ChildProcess | null) {}

  static async open(o: ServedPolicyOptions): Promise<ServedPolicy> {
    const client = new OpenAIClient(o.baseUrl);
    if (!o.command) {
      let ids: string[];
      try {
        ids = await client.models();
      } catch (err) {
        throw new Error(`rollout engine: no server answers at ${client.root} (${(err as Error).message}); start one serving ${o.policyFolder}, or give rollout.serverCommand to let the run start it`);
      }
      if (ids.includes(o.policyFolder)) return new ServedPolicy(client, o.policyFolder, null);
      if (o.baseModelName !== null && o.policyFolder === o.baseModel && ids.includes(o.baseModelName)) return new ServedPolicy(client, o.baseModelName, null);
      throw new Error(
        `rollout engine: the server at ${client.root} serves ${ids.map((i) => `'${i}'`).join(', ') || 'no model'}, but this rollout samples from the policy ${o.policyFolder}` +
          (o.policyFolder === o.baseModel ? ' (the base model: serve it under that path, or name it with ?model=<served name>)' : ' (the previous iteration\'s checkpoint: restart the server with it)') +
          '; or give rollout.serverCommand (e.g. "vllm serve {model} --port {port}") and the run starts the right server each iteration',
      );
    }
    const port = new URL(o.baseUrl).port;
    if (!port) throw new Error(`rollout engine: ${o.baseUrl} names no port, which rollout.serverCommand's {port} needs`);
    try {
      const ids = await client.models(0);
      throw new Error(`rollout engine: a server already answers at ${client.root} (serving ${ids.join(', ')}); stop it, or drop rollout.serverCommand to use it as it is`);
    } catch (err) {
      if ((err as Error).message.startsWith('rollout engine:')) throw err;
    }
    const cmd = fillCommand(o.command, o.policyFolder, port);
    o.onLog?.(`rollout engine: starting ${cmd} (output in ${o.logFile})`);
    const fd = openSync(o.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn('/bin/sh', ['-c', cmd], { stdio: ['ignore', fd, fd], detached: process.platform !== 'win32' });
    } finally {
      closeSync(fd);
    }
    const served = new ServedPolicy(client, '', child);
    live.add(served);
    let exited: string | null = null;
    child.on('exit', (code, signal) => (exited = signal ? `signal ${signal}` : `exit code ${code}`));
    const deadline = Date.now() + o.startupSeconds * 1000;
    const tail = (): string => {
      try {
        return readFileSync(o.logFile, 'utf8').trim().split('\n').slice(-8).join('\n');
      } catch {
        return '';
      }
    };
    for (;;) {
      if (exited) {
        live.delete(served);
        throw new Error(`rollout engine: the server command ended (${exited}) before it answered at ${client.root}:\n${tail()}`);
      }
      try {
        const ids = await client.models(0);
        const model = ids.includes(o.policyFolder) ? o.policyFolder : ids.length === 1 ? ids[0]! : null;
        if (model === null) {
          await served.close();
          throw new Error(`rollout engine: the started server lists ${ids.join(', ')}; none is the policy ${o.policyFolder}`);
        }
        o.onLog?.(`rollout engine: ${client.root} serves ${model}`);
        served.model = model;
        return served;
      } catch (err) {
        if ((err as Error).message.startsWith('rollout engine:')) throw err;
      }
      if (Date.now() > deadline) {
        await served.close();
        throw new Error(`rollout engine: the server did not answer at ${client.root} within ${o.startupSeconds} s (rollout.serverStartupSeconds):\n${tail()}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** Stops the server the run started (SIGTERM to its process group, SIGKILL after 30 s). */
  async close(): Promise<void> {
    const child = this.child;
    this.child = null;
    live.delete(this);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    const kill = (sig: NodeJS.Signals): void => {
      try {
        if (process.platform === 'win32') child.kill(sig);
        else process.kill(-child.pid!, sig);
      } catch {
        // already gone
      }
    };
    kill('SIGTERM');
    const timer = setTimeout(() => kill('SIGKILL'), 30_000);
    await gone;
    clearTimeout(timer);
  }
}
