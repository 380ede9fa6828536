// The judges: one interface (types.ts), many kinds (factory.ts).
export type { Judge, JudgeInput, Judgment } from './types.js';
export { createJudge, type JudgeContext } from './factory.js';
export { parseJudgeSpec, JUDGE_KINDS, type JudgeKind, type JudgeSpec } from './spec.js';
export { CommandJudge, PROTOCOL, PROTOCOL_VERSION, type CommandJudgeOptions } from './command.js';
export { DEMO_WORDS, demoScore, lengthScore, cyclicKind, cyclicProbability } from './builtin.js';
export type { RewardModelContext } from './rewardModel.js';
export type { PairRmContext } from './pairrm.js';
export { PairRmJudge } from '../pairrm/judge.js';
export { loadPairRm, type PairRmHandle } from '../pairrm/model.js';
