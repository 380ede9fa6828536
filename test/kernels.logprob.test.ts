// logprobForward / logprobBackward / maskedSequenceSum through the addon (CPU) against float64
// references on fresh random inputs, finite differences of the reference, extremes, bad input.
import { describe, expect, it } from 'vitest';
import { logprobBackward, logprobForward, maskedSequenceSum, IGNORE_INDEX } from '../src/kernels/index.js';
import { fromBf16Array, toBf16Array } from '../src/kernels/bf16.js';
import { expectClose, makeRng, refLse } from './kernels.helpers.js';

const rng = makeRng('kernels.logprob');

function randomCase(N: number, V: number, scale: number): { logits: Float32Array; labels: Int32Array } {
  const logits = new Float32Array(N * V);
  for (let i = 0; i < logits.length; i++) logits[i] = scale * rng.normal();
  const labels = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    const r = rng.int(0, 4);
    labels[n] = r === 0 ? 0 : r === 1 ? V - 1 : r === 2 ? IGNORE_INDEX : rng.int(0, V - 1);
  }
  return { logits, labels };
}

function refForward(x: ArrayLike<number>, labels: Int32Array, V: number): { tl: number[]; lse: number[] } {
  const tl: number[] = [];
  const lse: number[] = [];
  labels.forEach((y, n) => {
    const l = refLse(x, n * V, V);
    lse.push(l);
    tl.push(y === IGNORE_INDEX ? 0 : (x[n * V + y] as number) - l);
  });
  return { tl, lse };
}

function refGrad(x: ArrayLike<number>, labels: Int32Array, V: number, g: ArrayLike<number>): Float64Array {
  const d = new Float64Array(labels.length * V);
  labels.forEach((y, n) => {
    if (y === IGNORE_INDEX) return;
    const l = refLse(x, n * V, V);
    for (let v = 0; v < V; v++) d[n * V + v] = (g[n] as number) * ((v === y ? 1 : 0) - Math.exp((x[n * V + v] as number) - l));
  });
  return d;
}

function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] as number));
  return m;
}

describe('logprobForward (cpu)', () => {
  it.each([
    [1, 1],
    [4, 1],
    [9, 31],
    [5, 1000],
    [3, 5003],
  ])('matches float64 for N=%i V=%i (f32 and bf16)', async (N, V) => {
    const { logits, labels } = randomCase(N, V, 3);
    const r = await logprobForward({ logits, rows: N, vocab: V, labels });
    const ref = refForward(logits, labels, V);
    expectClose('tokenLogp', r.tokenLogp, ref.tl, 2e-5, 1e-6);
    expectClose('lse', r.lse, ref.lse, 2e-5, 1e-6);
    const bits = toBf16Array(logits);
    const rb = await logprobForward({ logits: bits, rows: N, vocab: V, labels, dtype: 'bf16' });
    const refb = refForward(fromBf16Array(bits), labels, V);
    expectClose('tokenLogp(bf16)', rb.tokenLogp, refb.tl, 2e-5, 1e-6);
  });

  it('is stable for logits of +-1e4, V = 1 and all-ignored rows', async () => {
    const N = 6;
    const V = 257;
    const { labels } = randomCase(N, V, 1);
    const logits = new Float32Array(N * V);
    for (let i = 0; i < logits.length; i++) logits[i] = i % 5 === 0 ? (i % 2 ? 1e4 : -1e4) : rng.uniform(-1e4, 1e4);
    const r = await logprobForward({ logits, rows: N, vocab: V, labels });
    const ref = refForward(logits, labels, V);
    expectClose('tokenLogp', r.tokenLogp, ref.tl, 5e-3, 1e-6);

    const one = Float32Array.from([1e4, -1e4, rng.normal()]);
    const r1 = await logprobForward({ logits: one, rows: 3, vocab: 1, labels: new Int32Array(3) });
    expect(Array.from(r1.tokenLogp)).toEqual([0, 0, 0]);

    const ignored = new Int32Array(N).fill(IGNORE_INDEX);
    const ri = await logprobForward({ logits, rows: N, vocab: V, labels: ignored });
    expect(Array.from(ri.tokenLogp)).toEqual(new Array(N).fill(0));
    const gi = await logprobBackward({ logits, rows: N, vocab: V, labels: ignored, gradToken: new Float32Array(N).fill(1) });
    expect(maxAbs(gi)).toBe(0);
  });
});

describe('logprobBackward (cpu)', () => {
  it('the float64 reference gradient matches central finite differences', () => {
    const N = 3;
    const V = 11;
    const { logits, labels } = randomCase(N, V, 2);
    const x = Float64Array.from(logits);
    const g = Float64Array.from({ length: N }, () => rng.normal());
    const f = (z: Float64Array): number => refForward(z, labels, V).tl.reduce((s, t, n) => s + (g[n] as number) * t, 0);
    const d = refGrad(x, labels, V, g);
    const h = 1e-5;
    for (let i = 0; i < x.length; i++) {
      const xp = Float64Array.from(x);
      const xm = Float64Array.from(x);
      xp[i] = (xp[i] as number) + h;
      xm[i] = (xm[i] as number) - h;
      expectClose(`d[${i}]`, [d[i] as number], [(f(xp) - f(xm)) / (2 * h)], 1e-7, 1e-6);
    }
  });

  it.each([
    [1, 1],
    [6, 17],
    [4, 3001],
  ])('matches the analytic reference for N=%i V=%i, with and without lse, f32/bf16', async (N, V) => {
    const { logits, labels } = randomCase(N, V, 3);
    const gradToken = Float32Array.from({ length: N }, () => 2 * rng.normal());
    const want = refGrad(logits, labels, V, gradToken);
    const { lse } = await logprobForward({ logits, rows: N, vocab: V, labels });
    const a = await logprobBackward({ logits, rows: N, vocab: V, labels, gradToken, lse });
    const b = await logprobBackward({ logits, rows: N, vocab: V, labels, gradToken });
    expect(a).toBeInstanceOf(Float32Array);
    expectClose('grad', a, want, 2e-6 * maxAbs(gradToken), 1e-5);
    expectClose('grad(no lse)', b, want, 2e-6 * maxAbs(gradToken), 1e-5);
    const c = await logprobBackward({ logits, rows: N, vocab: V, labels, gradToken, lse, gradDtype: 'bf16' });
    expect(c).toBeInstanceOf(Uint16Array);
    expectClose('grad(bf16 out)', fromBf16Array(c as Uint16Array), want, 1e-6 * maxAbs(gradToken), 8e-3);
  });

  it('in place writes the same bytes as out of place, into the logits array', async () => {
    const N = 5;
    const V = 999;
    const { logits, labels } = randomCase(N, V, 3);
    const gradToken = Float32Array.from({ length: N }, () => rng.normal());
    for (const bf16 of [false, true]) {
      const input = bf16 ? toBf16Array(logits) : Float32Array.from(logits);
      const out = await logprobBackward({ logits: input, rows: N, vocab: V, labels, gradToken });
      const work = input.slice();
      const inPlace = await logprobBackward({ logits: work, rows: N, vocab: V, labels, gradToken, inPlace: true });
      expect(inPlace).toBe(work);
      expect(Buffer.from(work.buffer).equals(Buffer.from(out.buffer))).toBe(true);
    }
  });
});

describe('maskedSequenceSum (cpu)', () => {
  it('sums masked tokens; a fully masked or one-token sequence works', async () => {
    for (const [B, T] of [
      [1, 1],
      [4, 1],
      [6, 129],
    ] as const) {
      const tokenLogp = Float32Array.from({ length: B * T }, () => -rng.uniform(0, 20));
      const mask = Uint8Array.from({ length: B * T }, () => rng.int(0, 1));
      if (B > 1) mask.fill(0, 0, T);
      const got = await maskedSequenceSum({ tokenLogp, mask, batch: B, seqLen: T });
      const want = Array.from({ length: B }, (_, b) => {
        let s = 0;
        for (let t = 0; t < T; t++) s += mask[b * T + t] ? (tokenLogp[b * T + t] as number) : 0;
        return s;
      });
      expectClose('seq', got, want, 1e-5, 1e-6);
      if (B > 1) expect(got[0]).toBe(0);
    }
  });
});

describe('bad input', () => {
  const N = 3;
  const V = 8;
  const base = (): { logits: Float32Array; labels: Int32Array } => randomCase(N, V, 1);

  it('names the argument before calling native', async () => {
    const { logits, labels } = base();
    await expect(logprobForward({ logits, rows: N, vocab: V + 1, labels })).rejects.toThrow(/logits has length 24, expected 27/);
    await expect(logprobForward({ logits, rows: N, vocab: V, labels: labels.subarray(1) })).rejects.toThrow(/labels has length 2/);
    const bad = labels.slice();
    bad[1] = V;
    await expect(logprobForward({ logits, rows: N, vocab: V, labels: bad })).rejects.toThrow(/labels\[1\] = 8 is out of range/);
    bad[1] = -5;
    await expect(logprobForward({ logits, rows: N, vocab: V, labels: bad })).rejects.toThrow(/labels\[1\] = -5/);
    await expect(logprobForward({ logits, rows: N, vocab: 0, labels })).rejects.toThrow(/vocab must be >= 1/);
    await expect(logprobForward({ logits, rows: 1.5, vocab: V, labels })).rejects.toThrow(/rows must be a non-negative integer/);
    await expect(logprobForward({ logits: new Float64Array(N * V) as never, rows: N, vocab: V, labels })).rejects.toThrow(/logits must be a Float32Array/);
    await expect(logprobForward({ logits, rows: N, vocab: V, labels, dtype: 'bf16' })).rejects.toThrow(/Uint16Array of bfloat16 bits/);
    await expect(logprobForward({ logits, rows: N, vocab: V, labels, device: 'tpu' as never })).rejects.toThrow(/device must be 'cpu' or 'cuda'/);
    const gradToken = new Float32Array(N).fill(1);
    gradToken[2] = NaN;
    const all = new Int32Array(N).fill(0);
    await expect(logprobBackward({ logits, rows: N, vocab: V, labels: all, gradToken })).rejects.toThrow(/gradToken\[2\] is not finite/);
    await expect(
      logprobBackward({ logits, rows: N, vocab: V, labels: all, gradToken: new Float32Array(N), inPlace: true, gradDtype: 'bf16' }),
    ).rejects.toThrow(/inPlace needs gradDtype/);
    await expect(
      maskedSequenceSum({ tokenLogp: new Float32Array(4), mask: Uint8Array.from([0, 1, 2, 0]), batch: 2, seqLen: 2 }),
    ).rejects.toThrow(/mask\[2\] = 2/);
  });

  it('non-finite logits are rejected natively with row and column', async () => {
    const { logits, labels } = base();
    logits[1 * V + 6] = Infinity;
    await expect(logprobForward({ logits, rows: N, vocab: V, labels })).rejects.toThrow(/logits\[1, 6\] is not finite/);
    logits[1 * V + 6] = NaN;
    await expect(logprobForward({ logits, rows: N, vocab: V, labels })).rejects.toThrow(/logits\[1, 6\] is not finite/);
  });

  it('the native layer checks sizes itself', async () => {
    const { native } = await import('../src/native/addon.js');
    const { logits, labels } = base();
    await expect(async () =>
      native().logprobForward({ logits, dtype: 'f32', rows: N, vocab: V + 1, labels, device: 'cpu' }),
    ).rejects.toThrow(/logits has 24 elements, expected 27/);
    // Labels are checked on the worker: the call returns a promise that rejects.
    const pending = native().logprobForward({ logits, dtype: 'f32', rows: N, vocab: V, labels: new Int32Array(N).fill(99), device: 'cpu' });
    expect(pending).toBeInstanceOf(Promise);
    await expect(pending).rejects.toThrow(/labels\[0\] = 99 is out of range/);
  });
});
