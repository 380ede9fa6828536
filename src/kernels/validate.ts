// Argument checks for the kernel API, run in TypeScript before any native call so bad input
// fails with a message naming the argument (the native layer checks sizes again).
import { requireDevice, type DeviceName } from '../native/addon.js';

export type FloatArray = Float32Array | Float64Array | number[];

export function checkCount(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer (got ${String(value)})`);
  }
  return value;
}

export function checkPositive(name: string, value: unknown): number {
  const n = checkCount(name, value);
  if (n === 0) throw new RangeError(`${name} must be >= 1 (got 0)`);
  return n;
}

export function checkLength(name: string, arr: { length: number }, expected: number, why: string): void {
  if (arr.length !== expected) {
    throw new RangeError(`${name} has length ${arr.length}, expected ${expected} (${why})`);
  }
}

export function checkKind<T>(name: string, value: unknown, ctor: new (...a: never[]) => T, kind: string): T {
  if (!(value instanceof ctor)) throw new TypeError(`${name} must be a ${kind}`);
  return value;
}

/** Every element finite; the error names the first bad index. */
export function checkFinite(name: string, arr: ArrayLike<number>): void {
  for (let i = 0; i < arr.length; i++) {
    const v = arr[i] as number;
    if (!Number.isFinite(v)) throw new RangeError(`${name}[${i}] is not finite (${v})`);
  }
}

/** Labels in [0, vocab) or -100 (ignored). */
export function checkLabels(name: string, labels: Int32Array, vocab: number): void {
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i] as number;
    if (y !== -100 && (y < 0 || y >= vocab)) {
      throw new RangeError(`${name}[${i}] = ${y} is out of range (need 0 <= label < vocab = ${vocab}, or -100 to ignore)`);
    }
  }
}

export function checkProbabilities(name: string, arr: ArrayLike<number>): void {
  for (let i = 0; i < arr.length; i++) {
    const v = arr[i] as number;
    if (!(v >= 0 && v <= 1)) throw new RangeError(`${name}[${i}] = ${v} is not a probability in [0, 1]`);
  }
}

export function checkDevice(device: unknown): DeviceName {
  const d = device ?? 'cpu';
  if (d !== 'cpu' && d !== 'cuda') throw new TypeError(`device must be 'cpu' or 'cuda' (got '${String(d)}')`);
  requireDevice(d);
  return d;
}

/** A Float32Array view of numbers (copies only when the input is not already one). */
export function toFloat32(name: string, value: unknown): Float32Array {
  if (value instanceof Float32Array) return value;
  if (value instanceof Float64Array || Array.isArray(value)) return Float32Array.from(value as ArrayLike<number>);
  throw new TypeError(`${name} must be a Float32Array, Float64Array or number[]`);
}
