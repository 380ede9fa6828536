// sppoLoss through the addon (CPU) against a float64 reference written from DESIGN.md, gradients
// against central finite differences of the reference, extremes of eta and margins, bad input.
import { describe, expect, it } from 'vitest';
import { LOSS_TYPES, sppoLoss, type LossType, type SppoLossInput } from '../src/kernels/index.js';
import { expectClose, makeRng } from './kernels.helpers.js';

const rng = makeRng('kernels.sppoLoss');

interface Cols {
  pc: Float64Array;
  pr: Float64Array;
  rc: Float64Array;
  rr: Float64Array;
  p: Float64Array;
  pw: Float64Array;
  pl: Float64Array;
}

// Values representable in float32, so the kernel and the reference see the same numbers.
const f32 = (x: number): number => Math.fround(x);

function batch(B: number): Cols {
  const c: Cols = { pc: new Float64Array(B), pr: new Float64Array(B), rc: new Float64Array(B), rr: new Float64Array(B), p: new Float64Array(B), pw: new Float64Array(B), pl: new Float64Array(B) };
  for (let i = 0; i < B; i++) {
    c.rc[i] = f32(-rng.uniform(5, 300));
    c.rr[i] = f32(-rng.uniform(5, 300));
    c.pc[i] = f32((c.rc[i] as number) + 3 * rng.normal());
    c.pr[i] = f32((c.rr[i] as number) + 3 * rng.normal());
    c.p[i] = f32(rng.uniform());
    c.pw[i] = i === 0 ? 1 : f32(rng.uniform());
    c.pl[i] = i === 0 ? 0 : f32(rng.uniform());
  }
  return c;
}

function refExample(t: LossType, beta: number, c: Cols, i: number, pc: number, pr: number): number {
  const eta = 1 / beta;
  const sw = pc - (c.rc[i] as number);
  const sl = pr - (c.rr[i] as number);
  switch (t) {
    case 'sppo':
      return 0.5 * ((sw - eta * ((c.pw[i] as number) - 0.5)) ** 2 + (sl - eta * ((c.pl[i] as number) - 0.5)) ** 2);
    case 'sppo_single':
      return 0.5 * ((sw - eta * ((c.p[i] as number) - 0.5)) ** 2 + (sl + eta * ((c.p[i] as number) - 0.5)) ** 2);
    case 'sppo_hard':
      return (sw - eta / 2) ** 2 + (sl + eta / 2) ** 2;
    case 'dpo': {
      const z = beta * (sw - sl); // -log sigmoid(z)
      return z > 0 ? Math.log1p(Math.exp(-z)) : -z + Math.log1p(Math.exp(z));
    }
    case 'ipo':
      return (sw - sl - 1 / (2 * beta)) ** 2;
  }
}

function input(c: Cols, t: LossType, beta: number): SppoLossInput {
  return {
    policyChosen: c.pc, policyRejected: c.pr, refChosen: c.rc, refRejected: c.rr,
    chosenProbs: c.p, chosenProbsWin: c.pw, chosenProbsLose: c.pl, beta, lossType: t,
  };
}

describe('sppoLoss (cpu)', () => {
  for (const t of LOSS_TYPES) {
    it(`${t}: losses, metrics and finite-difference gradients for eta 1 .. 1e4`, async () => {
      for (const eta of [1, 10, 1000, 1e4]) {
        const B = rng.int(1, 12);
        const c = batch(B);
        const beta = 1 / eta;
        const r = await sppoLoss(input(c, t, beta));
        const want = Array.from({ length: B }, (_, i) => refExample(t, beta, c, i, c.pc[i] as number, c.pr[i] as number));
        expectClose(`${t} losses`, r.losses, want, 1e-6, 1e-6);
        const mean = want.reduce((a, b) => a + b, 0) / B;
        expectClose('loss', [r.summary.loss], [mean], 1e-9, 1e-9);
        const sw = Array.from({ length: B }, (_, i) => (c.pc[i] as number) - (c.rc[i] as number));
        const sl = Array.from({ length: B }, (_, i) => (c.pr[i] as number) - (c.rr[i] as number));
        expectClose('rewardsChosen', r.rewardsChosen, sw.map((s) => beta * s), 1e-9, 1e-6);
        expectClose('rewardsRejected', r.rewardsRejected, sl.map((s) => beta * s), 1e-9, 1e-6);
        const avg = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;
        expectClose('summary.rewardsChosen', [r.summary.rewardsChosen], [avg(sw) * beta], 1e-9, 1e-9);
        expectClose('summary.margins', [r.summary.margins], [avg(sw.map((s, i) => s - (sl[i] as number))) * beta], 1e-9, 1e-9);
        expectClose('summary.accuracy', [r.summary.accuracy], [avg(sw.map((s, i) => (s > (sl[i] as number) ? 1 : 0)))], 1e-12, 0);
        for (let i = 0; i < B; i++) {
          for (const side of ['chosen', 'rejected'] as const) {
            const x0 = side === 'chosen' ? (c.pc[i] as number) : (c.pr[i] as number);
            const h = 1e-5 * (1 + Math.abs(x0));
            const f = (x: number): number =>
              refExample(t, beta, c, i, side === 'chosen' ? x : (c.pc[i] as number), side === 'rejected' ? x : (c.pr[i] as number)) / B;
            const fd = (f(x0 + h) - f(x0 - h)) / (2 * h);
            const got = side === 'chosen' ? r.gradChosen[i] : r.gradRejected[i];
            expectClose(`${t} grad ${side}[${i}] eta ${eta}`, [got as number], [fd], 1e-6 + (4e-16 * Math.abs(f(x0))) / h, 1e-5);
          }
        }
      }
    });
  }

  it('dpo stays finite at margins of +-1e5', async () => {
    for (const margin of [-1e5, 1e5]) {
      const r = await sppoLoss({ policyChosen: [margin / 2], policyRejected: [-margin / 2], refChosen: [0], refRejected: [0], beta: 1, lossType: 'dpo' });
      expect(Number.isFinite(r.losses[0])).toBe(true);
      expectClose('dpo loss', r.losses, [margin > 0 ? 0 : -margin], 1e-6, 1e-6);
      expect(r.gradChosen[0]).toBeCloseTo(-(r.gradRejected[0] as number), 12);
    }
  });
});

describe('sppoLoss bad input', () => {
  const c = batch(3);
  it('names the field', async () => {
    await expect(sppoLoss({ ...input(c, 'sppo', 1e-3), lossType: 'kto' as never })).rejects.toThrow(/unknown loss type 'kto'/);
    await expect(sppoLoss({ ...input(c, 'sppo', 0) })).rejects.toThrow(/beta must be finite and > 0/);
    await expect(sppoLoss({ ...input(c, 'sppo', -1) })).rejects.toThrow(/beta must be/);
    await expect(sppoLoss({ ...input(c, 'sppo', 1e-3), refRejected: [1, 2] })).rejects.toThrow(/refRejected has length 2, expected 3/);
    await expect(sppoLoss({ ...input(c, 'sppo', 1e-3), policyRejected: [0, NaN, 0] })).rejects.toThrow(/policyRejected\[1\] is not finite/);
    await expect(sppoLoss({ ...input(c, 'sppo', 1e-3), chosenProbsWin: [0.5, 1.5, 0] })).rejects.toThrow(/chosenProbsWin\[1\] = 1.5 is not a probability/);
    await expect(sppoLoss({ ...input(c, 'sppo', 1e-3), chosenProbsLose: undefined })).rejects.toThrow(/chosenProbsLose is required by loss 'sppo'/);
    await expect(sppoLoss({ ...input(c, 'sppo_single', 1e-3), chosenProbs: [NaN, 0, 0] })).rejects.toThrow(/chosenProbs\[0\]/);
    await expect(sppoLoss({ ...input(c, 'ipo', 1e-3), policyChosen: [] })).rejects.toThrow(/batch needs at least one pair/);
    await expect(sppoLoss({ ...input(c, 'dpo', 1e-3), device: 'gpu' as never })).rejects.toThrow(/device must be 'cpu' or 'cuda'/);
  });

  it('the native layer validates too', async () => {
    const { native } = await import('../src/native/addon.js');
    const f = (a: number[]): Float32Array => Float32Array.from(a);
    const args = { policyChosen: f([0, 0]), policyRejected: f([0, 0]), refChosen: f([0, 0]), refRejected: f([0, Infinity]), beta: 0.1, lossType: 'ipo' as const, device: 'cpu' as const };
    await expect(native().sppoLoss(args)).rejects.toThrow(/ref_rejected\[1\] is not finite/);
    expect(() => native().sppoLoss({ ...args, refRejected: f([0]) })).toThrow(/refRejected has 1 elements, expected 2/);
    expect(() => native().sppoLoss({ ...args, lossType: 'nope' as never })).toThrow(/unknown loss type 'nope'/);
  });
});
