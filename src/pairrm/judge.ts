// The PairRM judge over a loaded model (src/judge/pairrm.ts parses its spec): one judge() call
// collates every prompt, runs all ordered pairs of all prompts packed by length, and turns each
// prompt's comparison matrix into scores and a preference matrix.
import type { Judge, JudgeInput, Judgment } from '../judge/types.js';
import { validateBatch } from '../judge/input.js';
import { matrixFromScores } from '../judge/matrix.js';
import { packPairs, planBatches, type BatchLimits } from './batching.js';
import { collatePrompt, pairLength, pairSequence, type CollatorLimits, type PromptSegments } from './collator.js';
import type { PairRmHandle } from './model.js';
import { scoresFromComparisons } from './scores.js';

export interface PairRmJudgeOptions {
  tau: number;
  limits: BatchLimits;
  collate: CollatorLimits;
  /** The text PairRM sees as the source of a prompt (the templated or the plain user turn). */
  source: (prompt: string) => string;
}

interface PairJob {
  prompt: number;
  i: number;
  j: number;
}

export class PairRmJudge implements Judge {
  private closed = false;

  constructor(
    readonly name: string,
    private readonly model: PairRmHandle,
    private readonly opts: PairRmJudgeOptions,
  ) {}

  /** Comparison logits M[i][j] (0 on the diagonal) for each input. */
  async comparisons(batch: JudgeInput[]): Promise<number[][][]> {
    validateBatch(batch, this.name);
    if (this.closed) throw new Error(`judge '${this.name}' is closed`);
    const tok = this.model.tokenizer;
    const segs: PromptSegments[] = batch.map((x) => collatePrompt(tok, this.opts.collate, this.opts.source(x.prompt), x.responses));
    const jobs: PairJob[] = [];
    batch.forEach((x, p) => {
      const k = x.responses.length;
      for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) if (i !== j) jobs.push({ prompt: p, i, j });
    });
    const m = batch.map((x) => x.responses.map(() => new Array<number>(x.responses.length).fill(0)));
    const groups = planBatches(jobs.map((q) => pairLength(segs[q.prompt]!, q.i, q.j)), this.opts.limits);
    for (const g of groups) {
      const seqs = g.map((n) => pairSequence(segs[jobs[n]!.prompt]!, jobs[n]!.i, jobs[n]!.j, tok.ids));
      const logits = await this.model.compare(packPairs(seqs));
      if (logits.length !== g.length) throw new Error(`judge '${this.name}': the model returned ${logits.length} logits for ${g.length} pairs`);
      g.forEach((n, k) => {
        const q = jobs[n]!;
        const v = logits[k]!;
        if (!Number.isFinite(v)) {
          // fp16 tops out at 65504: an activation past it becomes inf, and the logit NaN.
          const hint = this.model.precision === 'fp16' ? "; in fp16 an activation may have overflowed 65504: judge with '?precision=bf16'" : '';
          throw new Error(`judge '${this.name}': batch item ${q.prompt}, pair (${q.i}, ${q.j}): the logit is ${v} (not finite)${hint}`);
        }
        m[q.prompt]![q.i]![q.j] = v;
      });
    }
    return m;
  }

  async judge(batch: JudgeInput[]): Promise<Judgment[]> {
    const ms = await this.comparisons(batch);
    return ms.map((m) => {
      const scores = scoresFromComparisons(m);
      return { probability: matrixFromScores(scores, this.opts.tau), scores };
    });
  }

  async close(): Promise<void> {
    if (!this.closed) this.model.free();
    this.closed = true;
  }
}
