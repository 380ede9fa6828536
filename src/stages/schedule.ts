// Learning-rate schedules with warmup, as transformers' get_{linear,cosine,constant}_schedule_with_warmup:
// step s (0-based) of `total`, warmup w = ceil(warmupRatio * total):
//   s < w:  lr * s / w                      (so the first step has lr 0 when w > 0, as transformers)
//   linear: lr * max(0, (total - s) / (total - w))
//   cosine: lr * max(0, 0.5 * (1 + cos(pi * (s - w) / (total - w))))
//   constant: lr
export const SCHEDULES = ['linear', 'cosine', 'constant'] as const;
export type ScheduleKind = (typeof SCHEDULES)[number];

export function warmupSteps(total: number, warmupRatio: number): number {
  return Math.ceil(warmupRatio * total);
}

export function learningRate(kind: ScheduleKind, peak: number, step: number, total: number, warmup: number): number {
  if (step < warmup) return (peak * step) / Math.max(1, warmup);
  const rest = Math.max(1, total - warmup);
  switch (kind) {
    case 'constant':
      return peak;
    case 'linear':
      return peak * Math.max(0, (total - step) / rest);
    case 'cosine':
      return peak * Math.max(0, 0.5 * (1 + Math.cos((Math.PI * (step - warmup)) / rest)));
  }
}
