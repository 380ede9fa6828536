// Shared helpers for the kernel suites: a logged-seed PRNG and float64 references.
import { seededRandom } from './sppo.seed.js';

export function makeRng(suite: string): { seed: number; uniform(lo?: number, hi?: number): number; normal(): number; int(lo: number, hi: number): number } {
  const { seed, rand: next } = seededRandom(suite);
  return {
    seed,
    uniform: (lo = 0, hi = 1) => lo + (hi - lo) * next(),
    normal: () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()),
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
  };
}

export function refLse(x: ArrayLike<number>, off: number, V: number): number {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, x[off + v] as number);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp((x[off + v] as number) - m);
  return m + Math.log(s);
}

/** Expects |got - want| <= atol + rtol |want| element-wise, naming the first bad index. */
export function expectClose(name: string, got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number): void {
  if (got.length !== want.length) throw new Error(`${name}: length ${got.length} != ${want.length}`);
  for (let i = 0; i < got.length; i++) {
    const g = got[i] as number;
    const w = want[i] as number;
    if (!(Math.abs(g - w) <= atol + rtol * Math.abs(w))) {
      throw new Error(`${name}[${i}] = ${g}, expected ${w} (atol ${atol}, rtol ${rtol})`);
    }
  }
}
