// llm:<base-url>?model=<name>[&template=<file>&concurrency=16&logprobs=true]: an LLM on an
// OpenAI-compatible server as a pairwise judge. For each pair of a prompt's K responses both
// orders are asked (y_i as A and y_j as B, then swapped), so that a preference for a position
// cancels: P_ij = (P(A | y_i, y_j) + 1 - P(A | y_j, y_i)) / 2. P(A) comes from the answer token's
// logprobs when the server gives them (llmPrompt.ts), else from the answer letter; an answer that
// is neither counts as a tie (0.5) and is reported. Requests: temperature 0, one token, seed 0.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Judge, JudgeInput, Judgment } from './types.js';
import { checkOptions, type JudgeSpec } from './spec.js';
import { validateBatch } from './input.js';
import { OpenAIClient } from '../openai/client.js';
import { DEFAULT_JUDGE_TEMPLATE, checkTemplate, fillTemplate, probabilityOfA, type AnswerEvidence } from './llmPrompt.js';

export const TOP_LOGPROBS = 20;

interface ChatAnswer {
  choices?: {
    message?: { content?: unknown };
    logprobs?: { content?: { token?: unknown; logprob?: unknown; top_logprobs?: { token?: unknown; logprob?: unknown }[] }[] } | null;
  }[];
}

export interface LlmJudgeOptions {
  onLog?: (line: string) => void;
  cwd?: string;
}

function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

export class LlmJudge implements Judge {
  readonly name: string;
  private readonly client: OpenAIClient;
  private readonly model: string;
  private readonly template: string;
  private readonly useLogprobs: boolean;
  private readonly limit: <T>(fn: () => Promise<T>) => Promise<T>;
  readonly counts = { requests: 0, fromLogprobs: 0, fromText: 0, unreadable: 0 };

  constructor(s: JudgeSpec, private readonly o: LlmJudgeOptions = {}) {
    checkOptions(s, ['model', 'template', 'concurrency', 'logprobs']);
    this.name = s.spec;
    const model = s.options.model;
    if (!model) throw new Error(`judge spec '${s.spec}': option model=<served model name> is required`);
    this.model = model;
    this.client = new OpenAIClient(s.target);
    if (s.options.template !== undefined) {
      const file = resolve(o.cwd ?? process.cwd(), s.options.template);
      try {
        this.template = readFileSync(file, 'utf8');
      } catch (err) {
        throw new Error(`judge spec '${s.spec}': cannot read the template ${file}: ${(err as Error).message}`);
      }
      checkTemplate(this.template, `judge spec '${s.spec}', template ${file}`);
    } else this.template = DEFAULT_JUDGE_TEMPLATE;
    const c = s.options.concurrency ?? '16';
    const conc = Number(c);
    if (!Number.isInteger(conc) || conc < 1) throw new Error(`judge spec '${s.spec}': concurrency must be a positive integer (got '${c}')`);
    this.limit = limiter(conc);
    const lp = s.options.logprobs ?? 'true';
    if (lp !== 'true' && lp !== 'false') throw new Error(`judge spec '${s.spec}': logprobs must be true or false (got '${lp}')`);
    this.useLogprobs = lp === 'true';
  }

  /** The judge's message for one ordered pair. */
  message(prompt: string, a: string, b: string): string {
    return fillTemplate(this.template, prompt, a, b);
  }

  private async ask(prompt: string, a: string, b: string): Promise<number> {
    const body: Record<string, unknown> = {
      model: this.model,
      messages: [{ role: 'user', content: this.message(prompt, a, b) }],
      temperature: 0,
      max_tokens: 1,
      seed: 0,
    };
    if (this.useLogprobs) Object.assign(body, { logprobs: true, top_logprobs: TOP_LOGPROBS });
    const r = (await this.limit(() => this.client.post('/chat/completions', body))) as ChatAnswer;
    this.counts.requests++;
    const c = r.choices?.[0];
    const text = typeof c?.message?.content === 'string' ? c.message.content : '';
    const first = c?.logprobs?.content?.[0];
    const top: AnswerEvidence['top'] = [];
    for (const t of first?.top_logprobs ?? []) if (typeof t.token === 'string' && typeof t.logprob === 'number') top.push({ token: t.token, logprob: t.logprob });
    if (top.length === 0 && first && typeof first.token === 'string' && typeof first.logprob === 'number') top.push({ token: first.token, logprob: first.logprob });
    const p = probabilityOfA({ top, text });
    if (!p) {
      this.counts.unreadable++;
      return 0.5;
    }
    if (p.from === 'logprobs') this.counts.fromLogprobs++;
    else this.counts.fromText++;
    return p.p;
  }

  async judge(batch: JudgeInput[]): Promise<Judgment[]> {
    validateBatch(batch, this.name);
    const before = this.counts.unreadable;
    const out = await Promise.all(
      batch.map(async (x) => {
        const k = x.responses.length;
        const p: number[][] = Array.from({ length: k }, () => new Array<number>(k).fill(0.5));
        const jobs: Promise<void>[] = [];
        for (let i = 0; i < k; i++) {
          for (let j = i + 1; j < k; j++) {
            jobs.push(
              Promise.all([this.ask(x.prompt, x.responses[i]!, x.responses[j]!), this.ask(x.prompt, x.responses[j]!, x.responses[i]!)]).then(([ab, ba]) => {
                const v = (ab + 1 - ba) / 2;
                p[i]![j] = v;
                p[j]![i] = 1 - v;
              }),
            );
          }
        }
        await Promise.all(jobs);
        return { probability: p, scores: null };
      }),
    );
    const unreadable = this.counts.unreadable - before;
    if (unreadable > 0) this.o.onLog?.(`judge '${this.name}': ${unreadable} answer(s) in this batch said neither A nor B and count as ties`);
    return out;
  }

  async close(): Promise<void> {}
}
