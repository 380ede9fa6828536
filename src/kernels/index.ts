// The kernels' public API.
export {
  logprobForward,
  logprobBackward,
  maskedSequenceSum,
  IGNORE_INDEX,
  type LogitsDType,
  type Logits,
  type LogprobInput,
  type LogprobForwardResult,
  type LogprobBackwardInput,
  type MaskedSumInput,
} from './logprob.js';
export {
  sppoLoss,
  LOSS_TYPES,
  isLossType,
  type LossType,
  type SppoLossInput,
  type SppoLossResult,
  type SppoLossSummary,
} from './sppoLoss.js';
export { bf16ToF32, f32ToBf16, toBf16Array, fromBf16Array } from './bf16.js';
