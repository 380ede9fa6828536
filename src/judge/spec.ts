// Judge specs: `<kind>:<target>[?key=value&...]`. For `command:` everything after the colon is
// the shell command (a command may contain '?' or '&'), so it takes no options.
import { describe } from './matrix.js';

export type JudgeKind = 'pairrm' | 'reward-model' | 'command' | 'precomputed' | 'builtin' | 'llm';
export const JUDGE_KINDS: readonly JudgeKind[] = ['pairrm', 'reward-model', 'command', 'precomputed', 'builtin', 'llm'];

export interface JudgeSpec {
  spec: string;
  kind: JudgeKind;
  target: string;
  options: Record<string, string>;
}

const OPTIONS = /^[A-Za-z_][\w-]*=[^&]*(?:&[A-Za-z_][\w-]*=[^&]*)*$/;

export function parseJudgeSpec(spec: string): JudgeSpec {
  if (typeof spec !== 'string') throw new Error(`judge spec must be a string (got ${describe(spec)})`);
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  if (!(JUDGE_KINDS as readonly string[]).includes(kind) || colon < 0) {
    throw new Error(
      `judge spec '${spec}' is not understood: expected one of ` +
        'pairrm:<folder>[?prompt=templated|plain&batch=16&precision=fp16], reward-model:<folder>[?tau=1], command:<shell command>, precomputed:<file.jsonl|.json|.parquet>[?tau=1], ' +
        'builtin:<demo|length|cyclic>[?options], llm:<base-url>?model=<served model>[&template=<file>]',
    );
  }
  const rest = spec.slice(colon + 1);
  if (rest.trim() === '') throw new Error(`judge spec '${spec}': nothing after '${kind}:'`);
  if (kind === 'command') return { spec, kind, target: rest, options: {} };
  const q = rest.lastIndexOf('?');
  if (q >= 0 && OPTIONS.test(rest.slice(q + 1))) {
    const options: Record<string, string> = {};
    for (const kv of rest.slice(q + 1).split('&')) {
      const eq = kv.indexOf('=');
      const key = kv.slice(0, eq);
      if (key in options) throw new Error(`judge spec '${spec}': option '${key}' given twice`);
      options[key] = decodeURIComponent(kv.slice(eq + 1));
    }
    return { spec, kind: kind as JudgeKind, target: rest.slice(0, q), options };
  }
  return { spec, kind: kind as JudgeKind, target: rest, options: {} };
}

/** Throws when an option is not one of `known`, naming the spec and what is accepted. */
export function checkOptions(s: JudgeSpec, known: readonly string[]): void {
  for (const key of Object.keys(s.options)) {
    if (!known.includes(key)) {
      throw new Error(`judge spec '${s.spec}': unknown option '${key}' (accepted: ${known.length ? known.join(', ') : 'none'})`);
    }
  }
}

/** A positive finite number option, or `fallback` when absent. */
export function positiveOption(s: JudgeSpec, key: string, fallback: number): number {
  const raw = s.options[key];
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || v <= 0) {
    throw new Error(`judge spec '${s.spec}': option ${key} must be a positive number (got '${raw}')`);
  }
  return v;
}
