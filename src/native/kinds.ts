// The loss types and optimizer kinds, listed once for TypeScript. The native core lists the same
// names (lossTypes and optimizerKinds on the addon); test/native.kinds.test.ts proves they agree.
export const LOSS_TYPES = ['sppo', 'sppo_single', 'sppo_hard', 'dpo', 'ipo'] as const;
export type LossType = (typeof LOSS_TYPES)[number];

export const OPTIMIZER_KINDS = ['rmsprop', 'adamw'] as const;
export type OptimizerKind = (typeof OPTIMIZER_KINDS)[number];

export const DEVICES = ['cpu', 'cuda'] as const;
export type DeviceName = (typeof DEVICES)[number];

/** The trainer's gradient arena (native TrainerOptions::grad_dtype): fp32, or bf16 for bf16 models only. */
export const GRADIENT_DTYPES = ['fp32', 'bf16'] as const;
export type GradientDtype = (typeof GRADIENT_DTYPES)[number];
