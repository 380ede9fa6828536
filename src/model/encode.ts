// Pure-TypeScript safetensors encoding and float conversions, for small files (tiny test
// checkpoints, fixtures, tools). Large weights are written by the core (Model.saveTensors).
import type { LoadableDtype } from './safetensors.js';
import { buildSafetensorsHeader } from './safetensors.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** fp32 -> bf16 bits, round to nearest even (as native/core/dtype.h). */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16ToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}

/** fp32 -> fp16 bits, round to nearest even, overflow to infinity. */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  const sign = (u >>> 16) & 0x8000;
  const e8 = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (e8 === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const exp = e8 - 127 + 15;
  if (exp >= 0x1f) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = sign | (exp << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return half;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** The value `x` becomes after a round trip through `dtype`. */
export function roundTo(dtype: LoadableDtype, x: number): number {
  if (dtype === 'BF16') return bf16ToF32(f32ToBf16(x));
  if (dtype === 'F16') return f16ToF32(f32ToF16(x));
  return Math.fround(x);
}

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** A complete safetensors file (header + data) holding `tensors` in `dtype`. */
export function encodeSafetensors(tensors: readonly NamedTensor[], dtype: LoadableDtype, metadata: Record<string, string> | null = { format: 'pt' }): Buffer {
  const plan = buildSafetensorsHeader(tensors, dtype, metadata);
  const header = Buffer.from(plan.header, 'utf8');
  const out = Buffer.alloc(8 + header.length + plan.dataBytes);
  out.writeBigUInt64LE(BigInt(header.length), 0);
  header.copy(out, 8);
  let pos = 8 + header.length;
  for (const t of tensors) {
    for (let i = 0; i < t.data.length; i++) {
      const v = t.data[i]!;
      if (dtype === 'F32') {
        out.writeFloatLE(v, pos);
        pos += 4;
      } else {
        out.writeUInt16LE(dtype === 'BF16' ? f32ToBf16(v) : f32ToF16(v), pos);
        pos += 2;
      }
    }
  }
  return out;
}
