// The protocol-buffer messages of a TensorBoard event file, encoded by hand (the few fields
// sppo-native writes; numbers and wire types from TensorBoard's event.proto and summary.proto):
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }
//   Value   { string tag = 1; float simple_value = 2; }
// plus a decoder for the same subset, used to pick up an existing file on resume.

export const FILE_VERSION = 'brain.Event:2';

export interface ScalarEvent {
  wallTime: number;
  step: number;
  /** [tag, value] in order; values are stored as float32. */
  values: [string, number][];
}

export interface DecodedEvent {
  wallTime: number;
  step: number;
  fileVersion: string | null;
  values: [string, number][];
}

const WIRE_VARINT = 0;
const WIRE_64 = 1;
const WIRE_LEN = 2;
const WIRE_32 = 5;

class Writer {
  private readonly parts: Buffer[] = [];

  varint(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`tfevents: varint ${v} must be a non-negative safe integer`);
    const bytes: number[] = [];
    let x = v;
    while (x >= 0x80) {
      bytes.push((x % 0x80) | 0x80);
      x = Math.floor(x / 0x80);
    }
    bytes.push(x);
    this.parts.push(Buffer.from(bytes));
    return this;
  }

  key(field: number, wire: number): this {
    return this.varint(field * 8 + wire);
  }

  double(field: number, v: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v);
    this.key(field, WIRE_64).parts.push(b);
    return this;
  }

  float(field: number, v: number): this {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.key(field, WIRE_32).parts.push(b);
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.key(field, WIRE_LEN).varint(data.length).parts.push(Buffer.from(data));
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, Buffer.from(s, 'utf8'));
  }

  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export function encodeFileVersion(wallTime: number): Buffer {
  return new Writer().double(1, wallTime).string(3, FILE_VERSION).done();
}

export function encodeScalars(e: ScalarEvent): Buffer {
  const summary = new Writer();
  for (const [tag, value] of e.values) summary.bytes(1, new Writer().string(1, tag).float(2, value).done());
  const w = new Writer().double(1, e.wallTime);
  if (e.step !== 0) w.key(2, WIRE_VARINT).varint(e.step);
  return w.bytes(5, summary.done()).done();
}

class Reader {
  pos = 0;
  constructor(private readonly buf: Buffer, private readonly what: string) {}

  get more(): boolean {
    return this.pos < this.buf.length;
  }

  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw new Error(`${this.what}: truncated varint`);
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 0x80;
    }
    throw new Error(`${this.what}: varint too long`);
  }

  take(n: number): Buffer {
    if (this.pos + n > this.buf.length) throw new Error(`${this.what}: field runs past the end`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_64) this.take(8);
    else if (wire === WIRE_LEN) this.take(this.varint());
    else if (wire === WIRE_32) this.take(4);
    else throw new Error(`${this.what}: unsupported wire type ${wire}`);
  }
}

/** Decodes the subset above; other fields are skipped. Throws on malformed bytes. */
export function decodeEvent(data: Buffer): DecodedEvent {
  const r = new Reader(data, 'event');
  const e: DecodedEvent = { wallTime: 0, step: 0, fileVersion: null, values: [] };
  while (r.more) {
    const k = r.varint();
    const field = Math.floor(k / 8);
    const wire = k % 8;
    if (field === 1 && wire === WIRE_64) e.wallTime = r.take(8).readDoubleLE();
    else if (field === 2 && wire === WIRE_VARINT) e.step = r.varint();
    else if (field === 3 && wire === WIRE_LEN) e.fileVersion = r.take(r.varint()).toString('utf8');
    else if (field === 5 && wire === WIRE_LEN) {
      const s = new Reader(r.take(r.varint()), 'summary');
      while (s.more) {
        const sk = s.varint();
        if (sk === (1 << 3) + WIRE_LEN) {
          const v = new Reader(s.take(s.varint()), 'summary value');
          let tag = '';
          let value = NaN;
          while (v.more) {
            const vk = v.varint();
            if (vk === (1 << 3) + WIRE_LEN) tag = v.take(v.varint()).toString('utf8');
            else if (vk === (2 << 3) + WIRE_32) value = v.take(4).readFloatLE();
            else v.skip(vk % 8);
          }
          e.values.push([tag, value]);
        } else s.skip(sk % 8);
      }
    } else r.skip(wire);
  }
  return e;
}
