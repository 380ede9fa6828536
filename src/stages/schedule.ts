// Learning-rate schedules with warmup, after transformers' get_{linear,cosine,constant}_schedule_with_warmup
// but with the warmup shifted by one step, so that no step has learning rate 0:
// step s (0-based) of `total`, warmup w = ceil(warmupRatio * total):
//   s < w:  lr * (s + 1) / w      (transformers: lr * s / w, so its first step has lr 0, and an
//                                  iteration of a single step trains nothing: see the README)
//   linear: lr * max(0, (total - s) / (total - w))
//   cosine: lr * max(0, 0.5 * (1 + cos(pi * (s - w) / (total - w))))
//   constant: lr
export const SCHEDULES = ['linear', 'cosine', 'constant'] as const;
export type ScheduleKind = (typeof SCHEDULES)[number];

export function warmupSteps(total: number, warmupRatio: number): number {
  return Math.ceil(warmupRatio * total);
}

export function learningRate(kind: ScheduleKind, peak: number, step: number, total: number, warmup: number): number {
  if (step < warmup) return (peak * (step + 1)) / warmup;
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
