// createJudge(spec, ctx): one entry point for every judge kind (see spec.ts for the syntax).
import { resolve } from 'node:path';
import type { Judge } from './types.js';
import { parseJudgeSpec } from './spec.js';
import { createBuiltinJudge } from './builtin.js';
import { CommandJudge } from './command.js';
import { createPrecomputedJudge } from './precomputed.js';
import { createRewardModelJudge, type RewardModelContext } from './rewardModel.js';
import { LlmJudge } from './llm.js';
import { createPairRmJudge, type PairRmContext } from './pairrm.js';

export interface JudgeContext extends Partial<RewardModelContext>, Partial<PairRmContext> {
  /** Relative folders and files in specs, and command judges' working directory (default process.cwd()). */
  cwd?: string;
  /** Command judges: fail when a request waits this long with no output (default 10 min). */
  commandTimeoutMs?: number;
  /** Command judges: time allowed for the handshake (default 10 min). */
  commandStartupTimeoutMs?: number;
  /** Command judges: receives their stderr lines. */
  onJudgeStderr?: (line: string) => void;
}

export async function createJudge(spec: string, ctx: JudgeContext = {}): Promise<Judge> {
  const s = parseJudgeSpec(spec);
  const cwd = ctx.cwd ?? process.cwd();
  switch (s.kind) {
    case 'builtin':
      return createBuiltinJudge(s);
    case 'precomputed':
      return createPrecomputedJudge(s, cwd);
    case 'reward-model':
      return createRewardModelJudge(s, ctx, resolve(cwd, s.target));
    case 'llm':
      return new LlmJudge(s, { cwd, onLog: ctx.onJudgeStderr });
    case 'pairrm':
      return createPairRmJudge(s, ctx, resolve(cwd, s.target));
    case 'command':
      return CommandJudge.start(s.target, {
        cwd,
        timeoutMs: ctx.commandTimeoutMs,
        startupTimeoutMs: ctx.commandStartupTimeoutMs,
        onStderr: ctx.onJudgeStderr,
      });
  }
}
