// An independent reader of TensorBoard event files for the tests: TFRecord framing with its own
// bitwise CRC-32C (no table, no package), and the Event messages decoded by protobufjs from
// TensorBoard's published field definitions (test/fixtures/tensorboard/event.proto).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';

function crc32cBitwise(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const masked = (data: Uint8Array): number => {
  const c = crc32cBitwise(data);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
};

const root = protobuf.parse(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'tensorboard', 'event.proto'), 'utf8')).root;
const EventType = root.lookupType('tensorboard.Event');

export interface TbEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  values: { tag: string; simpleValue: number }[];
}

/** Every record of `file`; throws on a bad length or data checksum, or trailing bytes. */
export function readEventFile(file: string): TbEvent[] {
  const buf = readFileSync(file);
  const out: TbEvent[] = [];
  let off = 0;
  while (off < buf.length) {
    if (off + 12 > buf.length) throw new Error(`${file}: ${buf.length - off} trailing bytes at ${off}`);
    const lenBytes = buf.subarray(off, off + 8);
    if (buf.readUInt32LE(off + 8) !== masked(lenBytes)) throw new Error(`${file}: bad length checksum at ${off}`);
    const n = Number(buf.readBigUInt64LE(off));
    const data = buf.subarray(off + 12, off + 12 + n);
    if (data.length !== n || off + 16 + n > buf.length) throw new Error(`${file}: record at ${off} runs past the end`);
    if (buf.readUInt32LE(off + 12 + n) !== masked(data)) throw new Error(`${file}: bad data checksum at ${off}`);
    const m = EventType.toObject(EventType.decode(data), { longs: Number, defaults: false }) as {
      wallTime?: number; step?: number; fileVersion?: string; summary?: { value?: { tag?: string; simpleValue?: number }[] };
    };
    out.push({
      wallTime: m.wallTime ?? 0,
      step: m.step ?? 0,
      fileVersion: m.fileVersion,
      values: (m.summary?.value ?? []).map((v) => ({ tag: v.tag ?? '', simpleValue: v.simpleValue ?? NaN })),
    });
    off += 16 + n;
  }
  return out;
}

/** tag -> [step, value] in file order. */
export function scalarsByTag(events: TbEvent[]): Map<string, [number, number][]> {
  const m = new Map<string, [number, number][]>();
  for (const e of events) for (const v of e.values) {
    if (!m.has(v.tag)) m.set(v.tag, []);
    m.get(v.tag)!.push([e.step, v.simpleValue]);
  }
  return m;
}
